#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "core/sha256.h"

using memel::sha256_hex;

TEST_CASE("sha256: FIPS 180-4 test vectors") {
  CHECK(sha256_hex(std::string()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex(std::string("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256: fed in pieces of any size gives the one-shot digest") {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += char('a' + (i * 7) % 26);
  const std::string whole = sha256_hex(s);
  for (size_t piece : {1, 3, 63, 64, 65, 200}) {
    memel::Sha256 h;
    for (size_t i = 0; i < s.size(); i += piece) h.update(s.data() + i, std::min(piece, s.size() - i));
    CHECK(h.hex_digest() == whole);
  }
  CHECK(sha256_hex(s.substr(1)) != whole);
}
