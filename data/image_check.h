#pragma once
// Checks image bytes before they reach stb_image (docs/hardening.md):
//  - memel reads PNG and JPEG only; stb_image would also decode BMP, GIF, PSD, PIC, PNM,
//    HDR and TGA data found in a file of any name, so other formats are refused;
//  - JPEG Huffman tables (DHT segments) declaring more than 256 codes are refused: Debian
//    12's stb_image (libstb 0.0~git20220908) writes past its tables on those, also from
//    stbi_info (found by fuzz/fuzz_image.cpp; upstream stb_image 2.28 rejects them);
//  - PNG chunks longer than the rest of the file are refused: stb_image grows its buffer
//    to a chunk's declared length before reading it (a 200-byte file could make it
//    allocate 2 GB);
//  - images with more than `max_pixels` pixels are refused before decoding (a JPEG of a
//    few hundred bytes can declare 65535 x 65535 pixels, which stb_image then fills).
#include <cstddef>
#include <cstdint>
#include <string>

namespace memel {

// Default pixel limit: 2^26 (67 megapixels, e.g. 8192 x 8192).
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;

// Format and JPEG Huffman-table checks: enough for stbi_info_from_memory. Throws
// memel::Error naming `what`.
void check_image_header(const unsigned char* bytes, size_t size, const std::string& what);
// All checks, for decoding with stbi_load_from_memory. Throws memel::Error naming `what`.
void check_image_bytes(const unsigned char* bytes, size_t size, const std::string& what,
                       int64_t max_pixels = kMaxImagePixels);

}  // namespace memel
