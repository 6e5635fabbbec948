// HS256 tokens for the load generator's clients: {"sub": user, "exp": now + ttl}.
#pragma once

#include <string>

namespace bench {

std::string mint_hs256(const std::string& secret, const std::string& sub, long ttl_seconds);

}  // namespace bench
