// Fuzz target: the statistics-dump reader (memel/dump.h) and what memel-inspect does with
// a dump: summary, top list, diff and the histogram picture.
//
// Input: PREFIX.json kSep PREFIX.safetensors.
#include "fuzz_common.h"

#include "memel/dump.h"
#include "memel/inspect.h"

using namespace memel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = fuzz::split_parts(in, fuzz::kSep, 2);
  const std::string prefix = fuzz::scratch_dir() + "/dump";
  fuzz::write_bytes(prefix + ".json", parts[0]);
  fuzz::write_bytes(prefix + ".safetensors", parts.size() > 1 ? parts[1] : std::string_view());
  MemelDump d;
  bool ok = false;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS((d = read_memel_dump(prefix), ok = true));
  if (!ok) return 0;
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(format_dump_summary(d));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(format_dump_top(d, 5));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(format_dump_diff(d, d));
  MEMEL_FUZZ_EXPECT_ONLY_MEMEL_ERRORS(plot_dump_png(d, prefix + ".png"));
  return 0;
}
