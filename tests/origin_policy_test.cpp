#include "origin_policy.h"

#include <gtest/gtest.h>

namespace mn {
namespace {

TEST(OriginPolicy, AnEmptyListAllowsAnyOrigin) {
  EXPECT_TRUE(origin_allowed("https://evil.example", {}));
}

TEST(OriginPolicy, AnExactEntryAllowsThatOriginOnly) {
  const std::vector<std::string> list = {"https://app.example.com"};
  EXPECT_TRUE(origin_allowed("https://app.example.com", list));
  EXPECT_TRUE(origin_allowed("HTTPS://App.Example.COM", list));
  EXPECT_FALSE(origin_allowed("http://app.example.com", list));
  EXPECT_FALSE(origin_allowed("https://app.example.com:8443", list));
  EXPECT_FALSE(origin_allowed("https://app.example.com.evil.example", list));
  EXPECT_FALSE(origin_allowed("https://evil.example", list));
  EXPECT_FALSE(origin_allowed("null", list));
  EXPECT_FALSE(origin_allowed("", list));
}

TEST(OriginPolicy, AWildcardEntryAllowsSubdomainsButNotTheDomainItselfNorLookalikes) {
  const std::vector<std::string> list = {"https://*.example.com"};
  EXPECT_TRUE(origin_allowed("https://app.example.com", list));
  EXPECT_TRUE(origin_allowed("https://a.b.example.com", list));
  EXPECT_FALSE(origin_allowed("https://example.com", list));
  EXPECT_FALSE(origin_allowed("https://evilexample.com", list));
  EXPECT_FALSE(origin_allowed("http://app.example.com", list));
  EXPECT_FALSE(origin_allowed("https://app.example.com.evil.example", list));
}

TEST(OriginPolicy, AWildcardWithoutSchemeAllowsAnySchemeAndAPortMustBeListedToMatch) {
  EXPECT_TRUE(origin_allowed("http://a.example.com", {"*.example.com"}));
  EXPECT_TRUE(origin_allowed("https://a.example.com", {"*.example.com"}));
  EXPECT_FALSE(origin_allowed("https://a.example.com:8443", {"https://app.example.com"}));
  EXPECT_TRUE(origin_allowed("http://localhost:3000", {"http://localhost:3000"}));
}

TEST(OriginPolicy, MalformedEntriesAreNamedAsErrors) {
  EXPECT_FALSE(origin_pattern_error("https://app.example.com"));
  EXPECT_FALSE(origin_pattern_error("*.example.com"));
  EXPECT_FALSE(origin_pattern_error("https://*.example.com"));
  EXPECT_TRUE(origin_pattern_error("*"));
  EXPECT_TRUE(origin_pattern_error("app.example.com"));
  EXPECT_TRUE(origin_pattern_error("https://"));
  EXPECT_TRUE(origin_pattern_error("https://a.*.example.com"));
  EXPECT_TRUE(origin_pattern_error("https://app.example.com/path"));
}

}  // namespace
}  // namespace mn
