#pragma once
// TensorBoard event files, written by hand (no protobuf or TensorFlow dependency).
//
// File layout: a sequence of TFRecords, each
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) | data[length] |
//   uint32 masked_crc32c(data)
// where masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8 (CRC-32C, the
// Castagnoli polynomial). Each record's data is a serialised tf.Event protobuf:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3 | Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2 | HistogramProto histo = 5; }
//   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
//                    repeated double bucket_limit = 6 [packed], bucket = 7 [packed]; }
// The first record of a file is an Event with file_version "brain.Event:2".
//
// Usage (one writer per run directory; `tensorboard --logdir runs` then lists every run):
//   TensorBoardWriter tb(run_dir);          // run_dir/events.out.tfevents.<time>.<host>.<pid>
//   tb.scalar("train/loss", step, loss);
//   tb.histogram("memel/encoder.layer.4/ms", step, edges, counts);
//   tb.flush();                             // also on destruction
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace memel::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `n` bytes, continuing from
// `crc` (0 for a fresh checksum). crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// TFRecord's masking of a CRC: rotate right by 15 bits, add 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);

// Appends one TFRecord (framing above) holding `data`.
void append_tfrecord(std::string& out, const std::string& data);
// Reads every record of a TFRecord file; throws (naming the file, the record's index
// and its byte offset) on a truncated record or a CRC that does not match.
std::vector<std::string> read_tfrecords(const std::string& path);

// --- tf.Event encoding -------------------------------------------------------------

struct TBHistogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;  // right edge of each bucket
  std::vector<double> bucket;        // count of each bucket
};

struct TBValue {
  std::string tag;
  bool has_simple_value = false;
  float simple_value = 0;
  bool has_histo = false;
  TBHistogram histo;
};

struct TBEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;    // set on the first event of a file only
  std::vector<TBValue> values;  // the summary's values
};

// Serialises an Event message (fields with their default value are omitted, as protobuf
// does, except wall_time, which is always written).
std::string encode_event(const TBEvent& e);
// Parses an Event message written by encode_event or by TensorFlow / tensorboardX (unknown
// fields are skipped); throws on malformed input.
TBEvent decode_event(const std::string& bytes);
// Every event of a file (read_tfrecords + decode_event).
std::vector<TBEvent> read_tensorboard_events(const std::string& path);

// A histogram from bucket edges (n + 1, ascending) and counts (n): bucket i is
// (edges[i], edges[i+1]]; min / max are edges[0] / edges[n] (TensorBoard draws the first
// bucket from min and the last up to max), num the total count, sum and sum_squares from
// the bucket centres (the values themselves are not known).
TBHistogram histogram_from_buckets(const std::vector<double>& edges, const std::vector<double>& counts);

class TensorBoardWriter {
 public:
  // Creates run_dir if needed and opens a new events file in it (the name has the
  // "tfevents" TensorBoard looks for: events.out.tfevents.<seconds>.<host>.<pid>[.<n>]);
  // writes the file_version event.
  explicit TensorBoardWriter(const std::string& run_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(const std::string& tag, int64_t step, double value);
  // edges (n + 1, strictly ascending, finite) and counts (n, >= 0); see histogram_from_buckets.
  void histogram(const std::string& tag, int64_t step, const std::vector<double>& edges,
                 const std::vector<double>& counts);
  // Writes a ready event (wall_time 0 is replaced by the current time).
  void write(TBEvent e);
  void flush();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace memel::train
