# Token minting (support/jwt_mint.*), one library for the tests and the benchmark's load
# generator (bench/CMakeLists.txt includes this file too). It needs OpenSSL and nlohmann-json only.
add_library(mn_jwt_mint STATIC ${CMAKE_CURRENT_LIST_DIR}/jwt_mint.cpp)
target_include_directories(mn_jwt_mint PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
target_link_libraries(mn_jwt_mint PUBLIC nlohmann_json::nlohmann_json OpenSSL::Crypto)
if(TARGET mn_warnings)
  target_link_libraries(mn_jwt_mint PRIVATE mn_warnings)
endif()
