#include "jwt_verifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/jwt_mint.h"

namespace {

using mn::JwtAlgorithm;
using mn::JwtOutcome;
using mn::JwtSettings;
using mn::JwtVerifier;
using nlohmann::json;
using std::chrono::seconds;
using Clock = std::chrono::system_clock;
namespace t = mn::test;

const std::string kSecret = "correct horse battery staple, 32+";

// Key generation costs tens of milliseconds for RSA: once per test binary is plenty.
const t::KeyPair& rsa() {
  static const t::KeyPair k = t::generate_rsa_keypair();
  return k;
}
const t::KeyPair& ec() {
  static const t::KeyPair k = t::generate_ec_p256_keypair();
  return k;
}

JwtSettings settings(JwtAlgorithm alg = JwtAlgorithm::HS256) {
  JwtSettings s;
  s.algorithm = alg;
  s.key = alg == JwtAlgorithm::HS256   ? kSecret
          : alg == JwtAlgorithm::RS256 ? rsa().public_pem
                                       : ec().public_pem;
  return s;
}

JwtOutcome verify(const JwtSettings& s, const std::string& token,
                  Clock::time_point now = Clock::now()) {
  return JwtVerifier(s).verify(token, now);
}

// A fixed clock for the time-window tests, so nothing depends on when they run.
const Clock::time_point kNow{seconds(1'700'000'000)};
constexpr long long kNowS = 1'700'000'000;

void expect_refused(const JwtOutcome& out, const std::string& error,
                    const std::string& token = {}) {
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.error, error);
  EXPECT_TRUE(out.user_id.empty());
  if (token.size() > 8) {
    EXPECT_EQ(out.error.find(token.substr(0, 8)), std::string::npos) << "error echoes the token";
  }
}

std::string flip_char(std::string s, std::size_t pos) {
  s[pos] = s[pos] == 'A' ? 'B' : 'A';
  return s;
}

TEST(JwtVerifier, AcceptsAValidHs256TokenAndReturnsTheSubject) {
  const JwtOutcome out = verify(settings(), t::mint_hs256(kSecret, t::claims_for("alice")));
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "alice");
  EXPECT_TRUE(out.error.empty());
}

TEST(JwtVerifier, AcceptsAValidRs256TokenAndReturnsTheSubject) {
  const JwtOutcome out =
      verify(settings(JwtAlgorithm::RS256), t::mint_rs256(rsa().private_pem, t::claims_for("bob")));
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "bob");
}

TEST(JwtVerifier, AcceptsAValidEs256TokenWithARawRsSignatureAndReturnsTheSubject) {
  const std::string token = t::mint_es256(ec().private_pem, t::claims_for("carol"));
  const JwtOutcome out = verify(settings(JwtAlgorithm::ES256), token);
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "carol");
}

TEST(JwtVerifier, RefusesAnHs256TokenSignedWithAnotherSecret) {
  const std::string token = t::mint_hs256("another secret entirely", t::claims_for("alice"));
  expect_refused(verify(settings(), token), "bad signature", token);
}

TEST(JwtVerifier, RefusesRs256AndEs256TokensSignedByAnotherKey) {
  const auto other_rsa = t::generate_rsa_keypair();
  const auto other_ec = t::generate_ec_p256_keypair();
  expect_refused(verify(settings(JwtAlgorithm::RS256),
                        t::mint_rs256(other_rsa.private_pem, t::claims_for("a"))),
                 "bad signature");
  expect_refused(verify(settings(JwtAlgorithm::ES256),
                        t::mint_es256(other_ec.private_pem, t::claims_for("a"))),
                 "bad signature");
}

TEST(JwtVerifier, RefusesATokenWhosePayloadWasSwappedAfterSigning) {
  for (const auto alg : {JwtAlgorithm::HS256, JwtAlgorithm::RS256, JwtAlgorithm::ES256}) {
    const json claims = t::claims_for("alice");
    const std::string signed_token = alg == JwtAlgorithm::HS256 ? t::mint_hs256(kSecret, claims)
                                     : alg == JwtAlgorithm::RS256
                                         ? t::mint_rs256(rsa().private_pem, claims)
                                         : t::mint_es256(ec().private_pem, claims);
    const std::size_t dot1 = signed_token.find('.');
    const std::size_t dot2 = signed_token.find('.', dot1 + 1);
    json forged = claims;
    forged["sub"] = "admin";
    const std::string tampered =
        signed_token.substr(0, dot1 + 1) + t::base64url(forged.dump()) + signed_token.substr(dot2);
    expect_refused(verify(settings(alg), tampered), "bad signature");
  }
}

TEST(JwtVerifier, RefusesASignatureWithOneCharacterChanged) {
  const std::string token = t::mint_rs256(rsa().private_pem, t::claims_for("alice"));
  expect_refused(verify(settings(JwtAlgorithm::RS256), flip_char(token, token.size() - 10)),
                 "bad signature");
}

TEST(JwtVerifier, RefusesAnExpiredToken) {
  const std::string token = t::mint_hs256(kSecret, {{"sub", "alice"}, {"exp", kNowS - 3600}});
  expect_refused(verify(settings(), token, kNow), "token expired", token);
}

TEST(JwtVerifier, RefusesATokenWithoutExpWhenExpIsRequired) {
  expect_refused(verify(settings(), t::mint_hs256(kSecret, {{"sub", "alice"}})), "missing expiry");
}

TEST(JwtVerifier, AcceptsATokenWithoutExpWhenExpIsNotRequired) {
  JwtSettings s = settings();
  s.require_exp = false;
  const JwtOutcome out = verify(s, t::mint_hs256(kSecret, {{"sub", "alice"}}));
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "alice");
}

TEST(JwtVerifier, StillEnforcesAnExpThatIsPresentWhenExpIsNotRequired) {
  JwtSettings s = settings();
  s.require_exp = false;
  expect_refused(verify(s, t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", kNowS - 3600}}), kNow),
                 "token expired");
}

TEST(JwtVerifier, RefusesAnExpOrNbfThatIsNotANumber) {
  expect_refused(
      verify(settings(), t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", "2099-01-01"}}), kNow),
      "malformed token");
  expect_refused(verify(settings(), t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", true}}), kNow),
                 "malformed token");
  expect_refused(
      verify(settings(),
             t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", kNowS + 60}, {"nbf", "soon"}}), kNow),
      "malformed token");
}

TEST(JwtVerifier, RefusesATokenWhoseNbfIsInTheFuture) {
  const std::string token =
      t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", kNowS + 3600}, {"nbf", kNowS + 600}});
  expect_refused(verify(settings(), token, kNow), "token not yet valid");
}

TEST(JwtVerifier, AppliesTheLeewayToExpOnBothSidesOfTheBoundary) {
  JwtSettings s = settings();
  s.leeway = seconds(30);
  const auto at = [&](long long exp) {
    return verify(s, t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", exp}}), kNow);
  };
  EXPECT_TRUE(at(kNowS - 29).ok);
  EXPECT_TRUE(at(kNowS - 30).ok);  // now == exp + leeway is still in
  expect_refused(at(kNowS - 31), "token expired");
  s.leeway = seconds(0);
  EXPECT_TRUE(at(kNowS).ok);
  expect_refused(at(kNowS - 1), "token expired");
}

TEST(JwtVerifier, AppliesTheLeewayToNbf) {
  JwtSettings s = settings();
  s.leeway = seconds(30);
  const auto at = [&](long long nbf) {
    return verify(s, t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", kNowS + 3600}, {"nbf", nbf}}),
                  kNow);
  };
  EXPECT_TRUE(at(kNowS + 30).ok);
  expect_refused(at(kNowS + 31), "token not yet valid");
}

TEST(JwtVerifier, AcceptsFractionalAndHugeNumericDatesWithoutOverflow) {
  EXPECT_TRUE(
      verify(settings(), t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", kNowS + 0.5}}), kNow).ok);
  EXPECT_TRUE(verify(settings(), t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", 1e300}}), kNow).ok);
  expect_refused(verify(settings(), t::mint_hs256(kSecret, {{"sub", "a"}, {"exp", -1e300}}), kNow),
                 "token expired");
}

TEST(JwtVerifier, AcceptsAMatchingAudienceGivenAsAStringOrInAnArray) {
  JwtSettings s = settings();
  s.audience = "membership";
  json c = t::claims_for("alice");
  c["aud"] = "membership";
  EXPECT_TRUE(verify(s, t::mint_hs256(kSecret, c)).ok);
  c["aud"] = json::array({"billing", "membership"});
  const JwtOutcome out = verify(s, t::mint_hs256(kSecret, c));
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "alice");
}

TEST(JwtVerifier, RefusesAMismatchedOrMissingAudience) {
  JwtSettings s = settings();
  s.audience = "membership";
  json c = t::claims_for("alice");
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "audience mismatch");
  c["aud"] = "billing";
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "audience mismatch");
  c["aud"] = json::array({"billing", "Membership", 42});
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "audience mismatch");
  c["aud"] = json::object({{"membership", true}});
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "audience mismatch");
}

TEST(JwtVerifier, IgnoresTheAudienceWhenNoneIsConfigured) {
  json c = t::claims_for("alice");
  c["aud"] = "somebody-else";
  EXPECT_TRUE(verify(settings(), t::mint_hs256(kSecret, c)).ok);
}

TEST(JwtVerifier, ChecksTheIssuerExactlyWhenOneIsConfigured) {
  JwtSettings s = settings();
  s.issuer = "https://auth.example";
  json c = t::claims_for("alice");
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "issuer mismatch");
  c["iss"] = "https://auth.example/";
  expect_refused(verify(s, t::mint_hs256(kSecret, c)), "issuer mismatch");
  c["iss"] = "https://auth.example";
  EXPECT_TRUE(verify(s, t::mint_hs256(kSecret, c)).ok);
}

TEST(JwtVerifier, ReadsTheUserFromACustomClaim) {
  JwtSettings s = settings();
  s.user_claim = "member_id";
  json c = t::claims_for("ignored-subject");
  c["member_id"] = "m-7";
  const JwtOutcome out = verify(s, t::mint_hs256(kSecret, c));
  EXPECT_TRUE(out.ok) << out.error;
  EXPECT_EQ(out.user_id, "m-7");
  expect_refused(verify(s, t::mint_hs256(kSecret, t::claims_for("only-sub"))),
                 "missing user claim");
}

TEST(JwtVerifier, ConvertsANumericSubjectToItsDecimalString) {
  json c = t::claims_for("x");
  c["sub"] = 42;
  EXPECT_EQ(verify(settings(), t::mint_hs256(kSecret, c)).user_id, "42");
  c["sub"] = 9007199254740993LL;  // 2^53 + 1: would come out wrong through a double
  EXPECT_EQ(verify(settings(), t::mint_hs256(kSecret, c)).user_id, "9007199254740993");
  c["sub"] = -7;
  EXPECT_EQ(verify(settings(), t::mint_hs256(kSecret, c)).user_id, "-7");
}

TEST(JwtVerifier, RefusesASignedPayloadThatLibjwtsJsonParserCannotRead) {
  // libjwt parses the payload too (jansson): integers beyond int64 and \u0000 in strings
  // fail there. Whatever the message, such a token must not get through.
  json c = t::claims_for("x");
  c["sub"] = 18446744073709551615ULL;
  EXPECT_FALSE(verify(settings(), t::mint_hs256(kSecret, c)).ok);
  c["sub"] = std::string("alice\0admin", 11);
  EXPECT_FALSE(verify(settings(), t::mint_hs256(kSecret, c)).ok);
}

TEST(JwtVerifier, RefusesAMissingEmptyOrNonScalarSubject) {
  json c = t::claims_for("x");
  c.erase("sub");
  expect_refused(verify(settings(), t::mint_hs256(kSecret, c)), "missing user claim");
  c["sub"] = "";
  expect_refused(verify(settings(), t::mint_hs256(kSecret, c)), "missing user claim");
  c["sub"] = nullptr;
  expect_refused(verify(settings(), t::mint_hs256(kSecret, c)), "missing user claim");
  for (const json& bad : {json(true), json(1.5), json::array({"a"}), json::object({{"id", "a"}})}) {
    c["sub"] = bad;
    expect_refused(verify(settings(), t::mint_hs256(kSecret, c)), "invalid user claim");
  }
}

TEST(JwtVerifier, RefusesASubjectWithControlCharacters) {
  for (const std::string& sub :
       {std::string("alice\nadmin"), std::string("a\x1b[31m"), std::string("a\x7f")}) {
    json c = t::claims_for("x");
    c["sub"] = sub;
    expect_refused(verify(settings(), t::mint_hs256(kSecret, c)), "invalid user claim");
  }
}

TEST(JwtVerifier, RefusesAlgNoneWithAnEmptySignature) {
  const std::string token =
      t::mint_raw({{"alg", "none"}, {"typ", "JWT"}}, t::claims_for("admin"), "");
  for (const auto alg : {JwtAlgorithm::HS256, JwtAlgorithm::RS256, JwtAlgorithm::ES256}) {
    expect_refused(verify(settings(alg), token), "algorithm not allowed", token);
  }
}

TEST(JwtVerifier, RefusesAlgNoneCarryingASignature) {
  const std::string real = t::mint_hs256(kSecret, t::claims_for("admin"));
  const std::string sig = real.substr(real.rfind('.') + 1);
  expect_refused(verify(settings(), t::mint_raw({{"alg", "none"}}, t::claims_for("admin"), sig)),
                 "algorithm not allowed");
}

TEST(JwtVerifier, RefusesCaseVariantsOfNoneAndOfThePinnedAlgorithm) {
  for (const char* alg : {"None", "NONE", "nOnE", "hs256", "Hs256", "HS256 ", ""}) {
    const std::string token = t::hmac_sha256_token({{"alg", alg}}, t::claims_for("admin"), kSecret);
    expect_refused(verify(settings(), token), "algorithm not allowed");
  }
}

TEST(JwtVerifier, RefusesAMissingOrNonStringAlg) {
  expect_refused(
      verify(settings(), t::hmac_sha256_token({{"typ", "JWT"}}, t::claims_for("a"), kSecret)),
      "algorithm not allowed");
  expect_refused(
      verify(settings(), t::hmac_sha256_token({{"alg", 256}}, t::claims_for("a"), kSecret)),
      "algorithm not allowed");
  expect_refused(
      verify(settings(), t::hmac_sha256_token({{"alg", {"HS256"}}}, t::claims_for("a"), kSecret)),
      "algorithm not allowed");
}

TEST(JwtVerifier, RefusesAnHs256TokenHmacSignedWithTheRsaPublicKeyPem) {
  // The classic alg-confusion forgery: raw libjwt 1.10 accepts this token.
  const std::string forged = t::hmac_sha256_token({{"alg", "HS256"}, {"typ", "JWT"}},
                                                  t::claims_for("admin"), rsa().public_pem);
  expect_refused(verify(settings(JwtAlgorithm::RS256), forged), "algorithm not allowed", forged);
}

TEST(JwtVerifier, RefusesAnHs256TokenHmacSignedWithTheEcPublicKeyPem) {
  const std::string forged =
      t::hmac_sha256_token({{"alg", "HS256"}}, t::claims_for("admin"), ec().public_pem);
  expect_refused(verify(settings(JwtAlgorithm::ES256), forged), "algorithm not allowed", forged);
}

TEST(JwtVerifier, RefusesTokensOfAnyAlgorithmOtherThanThePinnedOne) {
  const std::string rs = t::mint_rs256(rsa().private_pem, t::claims_for("a"));
  const std::string es = t::mint_es256(ec().private_pem, t::claims_for("a"));
  expect_refused(verify(settings(JwtAlgorithm::HS256), rs), "algorithm not allowed");
  expect_refused(verify(settings(JwtAlgorithm::HS256), es), "algorithm not allowed");
  expect_refused(verify(settings(JwtAlgorithm::RS256), es), "algorithm not allowed");
  expect_refused(verify(settings(JwtAlgorithm::ES256), rs), "algorithm not allowed");
  const std::string hs384 = t::hmac_sha256_token({{"alg", "HS384"}}, t::claims_for("a"), kSecret);
  expect_refused(verify(settings(), hs384), "algorithm not allowed");
}

TEST(JwtVerifier, RefusesACritHeaderItCannotUnderstand) {
  const std::string token =
      t::hmac_sha256_token({{"alg", "HS256"}, {"crit", {"exp"}}}, t::claims_for("a"), kSecret);
  expect_refused(verify(settings(), token), "unsupported header");
}

TEST(JwtVerifier, AcceptsTypJwtInAnyCaseButRefusesOtherTypes) {
  EXPECT_TRUE(verify(settings(), t::hmac_sha256_token({{"alg", "HS256"}, {"typ", "jwt"}},
                                                      t::claims_for("a"), kSecret))
                  .ok);
  expect_refused(verify(settings(), t::hmac_sha256_token({{"alg", "HS256"}, {"typ", "at+jwt"}},
                                                         t::claims_for("a"), kSecret)),
                 "unsupported token type");
}

TEST(JwtVerifier, RefusesJunkAppendedToAnEs256Signature) {
  // libjwt's base64 decoder skips such characters, so raw libjwt accepts this.
  const std::string token = t::mint_es256(ec().private_pem, t::claims_for("a"));
  expect_refused(verify(settings(JwtAlgorithm::ES256), token + "~"), "malformed token");
  expect_refused(verify(settings(JwtAlgorithm::ES256), token + "AA"), "bad signature");
}

TEST(JwtVerifier, RefusesANonCanonicalBase64Spelling) {
  // 32 HMAC bytes are 43 characters whose last two bits must be zero; 'B'..'D' there
  // decode to the same bytes in a lenient decoder.
  const std::string token = t::mint_hs256(kSecret, t::claims_for("a"));
  const std::string sig = token.substr(token.rfind('.') + 1);
  ASSERT_EQ(sig.size(), 43u);
  std::string bent = token;
  bent.back() = static_cast<char>(bent.back() + 1);
  expect_refused(verify(settings(), bent), "malformed token");
  expect_refused(verify(settings(), token + "="), "malformed token");
}

TEST(JwtVerifier, RefusesMalformedTokensWithoutCrashing) {
  const std::string good = t::mint_hs256(kSecret, t::claims_for("a"));
  const std::string head = good.substr(0, good.find('.'));
  const std::string body_sig = good.substr(good.find('.'));
  const std::vector<std::string> bad = {
      "",
      ".",
      "..",
      "...",
      good.substr(0, good.rfind('.')),                      // 2 parts
      good + ".AAAA",                                       // 4 parts
      body_sig,                                             // empty header
      head + ".." + good.substr(good.rfind('.') + 1),       // empty payload
      head.substr(0, 4) + "!" + head.substr(5) + body_sig,  // not base64url
      t::base64url("not json") + body_sig,                  // header not JSON
      t::base64url("[\"HS256\"]") + body_sig,               // header not an object
      t::base64url(std::string("\xff\xfe", 2)) + body_sig,  // header not UTF-8
      head + "." + t::base64url("{\"sub\":") + ".AAAA",     // payload not JSON
      "A" + body_sig,                                       // one base64 char: impossible length
  };
  for (const std::string& token : bad) {
    const JwtOutcome out = verify(settings(), token);
    EXPECT_FALSE(out.ok) << token;
    EXPECT_EQ(out.error, "malformed token") << token;
  }
}

TEST(JwtVerifier, RefusesAPayloadThatIsValidJsonButNotAnObject) {
  const std::string token =
      t::hmac_sha256_token({{"alg", "HS256"}}, json::array({"sub", "a"}), kSecret);
  expect_refused(verify(settings(), token), "malformed token");
}

TEST(JwtVerifier, RefusesAnHs256TokenWithATruncatedSignature) {
  const std::string token = t::mint_hs256(kSecret, t::claims_for("a"));
  expect_refused(verify(settings(), token.substr(0, token.size() - 3)), "bad signature");
}

TEST(JwtVerifier, RefusesAHugeTokenBeforeParsingIt) {
  json c = t::claims_for("a");
  c["pad"] = std::string(JwtVerifier::kMaxTokenBytes, 'x');
  const std::string properly_signed = t::mint_hs256(kSecret, c);
  expect_refused(verify(settings(), properly_signed), "token too large");
  expect_refused(verify(settings(), std::string(1 << 20, 'A')), "token too large");
}

TEST(JwtVerifier, ThrowsWhenAnHs256VerifierIsGivenAnEmptySecret) {
  JwtSettings s = settings();
  s.key.clear();
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
}

TEST(JwtVerifier, ThrowsWhenAnHs256SecretIsShorterThan32BytesAndAccepts32) {
  JwtSettings s = settings();
  for (const std::string& weak : {std::string("a"), std::string("k"), std::string(31, 'x')}) {
    s.key = weak;
    try {
      JwtVerifier v{s};
      ADD_FAILURE() << "a " << weak.size() << "-byte secret was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("at least 32"), std::string::npos) << e.what();
    }
  }
  s.key = std::string(32, 'x');
  EXPECT_TRUE(JwtVerifier(s).verify(t::mint_hs256(s.key, t::claims_for("a")), Clock::now()).ok);
}

TEST(JwtVerifier, ThrowsWhenAnHs256SecretIsActuallyAPemKey) {
  JwtSettings s = settings();
  s.key = rsa().public_pem;
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
}

TEST(JwtVerifier, ThrowsWhenAnRs256VerifierIsGivenGarbageOrAnEmptyPem) {
  JwtSettings s = settings(JwtAlgorithm::RS256);
  for (const std::string& key :
       {std::string("not a pem"), std::string(),
        std::string("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}) {
    s.key = key;
    EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
  }
}

TEST(JwtVerifier, ThrowsWhenThePemDoesNotMatchThePinnedAlgorithm) {
  JwtSettings s = settings(JwtAlgorithm::RS256);
  s.key = ec().public_pem;
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
  s = settings(JwtAlgorithm::ES256);
  s.key = rsa().public_pem;
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
  s.key = t::generate_ec_keypair("P-384").public_pem;  // ES256 means P-256 only
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
}

TEST(JwtVerifier, ThrowsWhenGivenAPrivateKeyOrAWeakRsaKey) {
  JwtSettings s = settings(JwtAlgorithm::RS256);
  s.key = rsa().private_pem;
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
  s.key = t::generate_rsa_keypair(1024).public_pem;
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
}

TEST(JwtVerifier, ThrowsOnANegativeLeewayOrAnEmptyUserClaimName) {
  JwtSettings s = settings();
  s.leeway = seconds(-1);
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
  s = settings();
  s.user_claim.clear();
  EXPECT_THROW(JwtVerifier{s}, std::invalid_argument);
}

TEST(JwtVerifier, VerifiesConcurrentlyFromSeveralThreads) {
  const JwtVerifier verifier(settings(JwtAlgorithm::ES256));
  const std::string good = t::mint_es256(ec().private_pem, t::claims_for("alice"));
  const std::string bad = flip_char(good, good.size() - 5);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int n = 0; n < 100; ++n) {
        const JwtOutcome ok = verifier.verify(good, Clock::now());
        const JwtOutcome ko = verifier.verify(bad, Clock::now());
        if (!ok.ok || ok.user_id != "alice" || ko.ok) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(JwtAlgorithmName, ParsesOnlyTheExactJoseNames) {
  EXPECT_EQ(mn::parse_jwt_algorithm("HS256"), JwtAlgorithm::HS256);
  EXPECT_EQ(mn::parse_jwt_algorithm("RS256"), JwtAlgorithm::RS256);
  EXPECT_EQ(mn::parse_jwt_algorithm("ES256"), JwtAlgorithm::ES256);
  for (const char* name : {"none", "hs256", "HS384", "PS256", "", "ES256 "}) {
    EXPECT_FALSE(mn::parse_jwt_algorithm(name).has_value()) << name;
  }
  EXPECT_EQ(mn::jwt_algorithm_name(JwtAlgorithm::ES256), "ES256");
}

}  // namespace
