// The TLS side of --tls-cert-file / --tls-key-file: an OpenSSL server context through Asio.
#pragma once

#include <asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace mn {

// A server context with the PEM certificate chain and private key in these files, TLS 1.2 or
// newer only. Throws std::runtime_error naming the file and OpenSSL's reason.
std::shared_ptr<asio::ssl::context> make_tls_context(const std::string& cert_file, const std::string& key_file);

}  // namespace mn
