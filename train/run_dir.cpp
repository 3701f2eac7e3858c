#include "train/run_dir.h"

#include "train/config.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace fs = std::filesystem;

namespace memel::train {

RunDirLock::RunDirLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  MEMEL_CHECK(!ec, "[memel-train] cannot create the run directory ", dir, ": ", ec.message());
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MEMEL_CHECK(fd_ >= 0, "[memel-train] cannot open ", path, ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[128] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : std::string("an unknown process");
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    MEMEL_CHECK(err != EWOULDBLOCK, "[memel-train] run directory ", dir, " is in use by ", holder,
                " (one process writes a run directory at a time; wait for it or choose another --out)");
    MEMEL_FAIL("[memel-train] cannot lock ", path, ": ", std::strerror(err));
  }
  std::ostringstream who;
  who << "memel-train pid " << ::getpid();
  const std::string text = who.str() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size())) {
    // The lock holds without the note; only the message of a refused process is poorer.
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

MetricsFile read_metrics(const std::string& path) {
  MetricsFile m;
  std::ifstream f(path, std::ios::binary);
  if (!f) return m;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string all = ss.str();
  size_t pos = 0;
  int64_t number = 0;
  while (pos < all.size()) {
    const size_t nl = all.find('\n', pos);
    const bool last_unterminated = nl == std::string::npos;
    std::string text = all.substr(pos, last_unterminated ? std::string::npos : nl - pos);
    pos = last_unterminated ? all.size() : nl + 1;
    ++number;
    if (text.empty()) continue;
    MetricsFile::Line line;
    line.text = text;
    line.record = json::parse(text, nullptr, false);
    line.parsed = !line.record.is_discarded() && line.record.is_object();
    if (!line.parsed) {
      if (last_unterminated) m.torn_tail = true;
      m.warnings.push_back(path + " line " + std::to_string(number) + " is not a complete JSON record (" +
                           (last_unterminated ? "a torn last line" : "torn or edited") + "): skipped");
    }
    m.lines.push_back(std::move(line));
  }
  return m;
}

std::string metrics_kept_for_resume(const MetricsFile& m, int64_t step) {
  // The last record to keep; unparsable lines before it stay, those after it go with the
  // lost segment's records.
  size_t end = 0;
  for (size_t i = 0; i < m.lines.size(); ++i) {
    const auto& l = m.lines[i];
    if (l.parsed && l.record.value("step", int64_t(0)) <= step) end = i + 1;
  }
  std::string text;
  for (size_t i = 0; i < end; ++i) {
    const auto& l = m.lines[i];
    if (!l.parsed || l.record.value("step", int64_t(0)) <= step) text += l.text + "\n";
  }
  return text;
}

namespace {

void differences(const json& a, const json& b, const std::string& prefix, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    for (auto& kv : a.items()) {
      const std::string k = prefix.empty() ? kv.key() : prefix + "." + kv.key();
      if (b.contains(kv.key()))
        differences(kv.value(), b.at(kv.key()), k, out);
      else
        out.push_back(k);
    }
    for (auto& kv : b.items())
      if (!a.contains(kv.key())) out.push_back(prefix.empty() ? kv.key() : prefix + "." + kv.key());
    return;
  }
  if (a != b) out.push_back(prefix);
}

}  // namespace

std::vector<std::string> config_differences(const json& a, const json& b) {
  std::vector<std::string> out;
  differences(a, b, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

bool is_harmless_config_key(const std::string& key) { return key == "threads" || key == "device" || key == "out" || key == "name"; }

std::vector<std::string> result_changing_differences(const json& a, const json& b) {
  std::vector<std::string> out = config_differences(with_memel_expanded(a), with_memel_expanded(b));
  out.erase(std::remove_if(out.begin(), out.end(), is_harmless_config_key), out.end());
  return out;
}

json config_value(const json& cfg, const std::string& key) {
  const json* j = &cfg;
  std::stringstream ss(key);
  std::string part;
  while (std::getline(ss, part, '.')) {
    if (!j->is_object() || !j->contains(part)) return nullptr;
    j = &j->at(part);
  }
  return *j;
}

namespace {

void set_value(json& cfg, const std::string& key, const json& v) {
  json* j = &cfg;
  std::stringstream ss(key);
  std::string part;
  std::vector<std::string> parts;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!(*j)[parts[i]].is_object()) (*j)[parts[i]] = json::object();
    j = &(*j)[parts[i]];
  }
  (*j)[parts.back()] = v;
}

}  // namespace

json recorded_config(const std::string& run_dir) {
  std::ifstream cf(fs::path(run_dir) / "config.resolved.json");
  if (!cf) return nullptr;
  json cfg = json::parse(cf, nullptr, false);
  MEMEL_CHECK(!cfg.is_discarded() && cfg.is_object(), "[memel-train] ", (fs::path(run_dir) / "config.resolved.json").string(),
              " is not a JSON object (edited or damaged): cannot check a resume against it");
  const MetricsFile history = read_metrics((fs::path(run_dir) / "config.history.jsonl").string());
  for (const auto& l : history.lines) {
    MEMEL_CHECK(l.parsed && l.record.contains("changed") && l.record["changed"].is_object(), "[memel-train] ",
                (fs::path(run_dir) / "config.history.jsonl").string(), ": a line is not a recorded change: ", l.text);
    for (auto& kv : l.record["changed"].items()) set_value(cfg, kv.key(), kv.value().at("to"));
  }
  return cfg;
}

void record_config_change(const std::string& run_dir, int64_t step, const json& from, const json& to,
                          const std::vector<std::string>& keys) {
  json changed = json::object();
  for (const std::string& k : keys) changed[k] = {{"from", config_value(from, k)}, {"to", config_value(to, k)}};
  const std::string path = (fs::path(run_dir) / "config.history.jsonl").string();
  std::string text;
  {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    text = ss.str();
  }
  if (!text.empty() && text.back() != '\n') text += "\n";
  text += json{{"step", step}, {"changed", changed}}.dump() + "\n";
  write_file_atomic(path, text);
}

}  // namespace memel::train
