#pragma once
// HKO-7-style radar frame sequences: grey PNG frames in a folder tree whose file names
// carry the timestamp (HKO-7: radarPNG/2010/06/02/RAD100602100000.png, one frame every
// 6 minutes), a list of days to use, and consecutive sequences at a fixed interval.
//
// Index: every file under `root` (any depth) whose name matches `name_pattern` is a
// frame at the time the name gives; other files are ignored. A sequence is seq_len
// frames at start, start + interval, ...; a sequence with any frame missing (a gap) is
// skipped. Starts are taken in time order, keeping a start only when it is at least
// `stride` intervals after the last kept one. With `days`, only frames of those days
// count (a sequence cannot cross into a day not listed).
//
// Masks (optional): `mask_root` holds a parallel tree with the same relative paths,
// one grey PNG per frame, nonzero = valid pixel. A frame without its mask counts as
// missing.
//
// Example i: {"frames": (T, 1, H, W) F32 in [0, 1] (pixel / 255), "mask": (T, 1, H, W)
// F32 1/0 (with mask_root), "start": () I64 minutes since 1970-01-01 00:00 UTC}. A frame
// that cannot be decoded makes get() throw an error naming the file; with check_frames
// the index probes every frame (and mask) once and treats unreadable ones as missing.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace memel {

struct FrameSequenceOptions {
  std::string root;       // frame tree
  std::string mask_root;  // parallel mask tree, "" = no masks
  // Literal text and the fields {yyyy} {yy} (2000 + yy) {MM} {dd} {HH} {mm} {ss}; the
  // whole file name must match. HKO-7: "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png".
  std::string name_pattern = "RAD{yy}{MM}{dd}{HH}{mm}{ss}.png";
  std::vector<std::string> days;  // "YYYYMMDD" or "YYYY-MM-DD"; empty = every day found
  std::string days_file;          // or a text file of days, one per line ('#' comments)
  int64_t interval_minutes = 6;
  int64_t seq_len = 25;           // frames per sequence (input + output)
  int64_t stride = 1;             // intervals between kept sequence starts
  bool check_frames = false;      // probe every frame when indexing; unreadable = missing
  // Output frame size; 0 = as stored. A stored size that is an integer multiple is
  // reduced by box averaging (480 -> 240; a reduced mask pixel is valid when at least
  // half of its box is); any other mismatch is an error.
  int64_t height = 0, width = 0;
};

// Minutes since 1970-01-01 00:00 (proleptic Gregorian, no time zones).
int64_t civil_to_minutes(int64_t year, int64_t month, int64_t day, int64_t hour = 0, int64_t minute = 0);
// "YYYY-MM-DD HH:MM".
std::string minutes_to_string(int64_t minutes);
// Parses `name` with a name pattern (see FrameSequenceOptions); false when it does not
// match or the date is invalid. Seconds are ignored beyond validation.
bool parse_frame_time(const std::string& name, const std::string& pattern, int64_t* minutes);

class FrameSequenceDataset : public Dataset {
 public:
  explicit FrameSequenceDataset(FrameSequenceOptions o);
  int64_t size() const override { return int64_t(starts_.size()); }
  Example get(int64_t i) const override;

  const FrameSequenceOptions& options() const { return opt_; }
  int64_t num_frames() const { return int64_t(frames_.size()); }  // frames indexed (after the day filter)
  int64_t sequence_start(int64_t i) const;                         // minutes since the epoch
  // Frames (relative paths) that check_frames found unreadable, with the reason.
  const std::vector<std::string>& skipped_frames() const { return skipped_; }

  // Reads one grey frame as (H, W) floats in [0, 1]; throws naming the file.
  static std::vector<float> read_png(const std::string& path, int64_t* height, int64_t* width);

 private:
  std::vector<float> load(const std::string& path, bool mask, int64_t* h, int64_t* w) const;

  FrameSequenceOptions opt_;
  std::vector<std::pair<int64_t, std::string>> frames_;  // (minute, relative path), sorted
  std::vector<size_t> starts_;                           // index into frames_ of each sequence
  std::vector<std::string> skipped_;
};

}  // namespace memel
