#pragma once
// Run configuration: JSON with a fixed schema. Every key a user writes must exist in
// the defaults (or sit in a free-form section such as model.config), with the same
// type; `--set a.b=value` edits one key (value parsed as JSON, else taken as a string).
//
// Config text is checked more strictly than plain JSON: a key may appear only once in
// an object (nlohmann would keep the last one silently), and a --set value that starts
// like JSON ({, [, ", a digit, -, true, false, null) must be valid JSON; only a bare
// word (--set memel.mode=rd) is taken as a string.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace memel::train {

using nlohmann::json;

// The full default configuration for a task ("image-classification", ...).
json default_config(const std::string& task);
// Reads FILE (if given), applies the --set edits, merges onto the task's defaults and
// validates. Errors name the key and the expected type.
json resolve_config(const std::string& file, const std::vector<std::string>& sets);
// Merges `user` onto `defaults` checking keys and types; `path` names the section.
void merge_checked(json& defaults, const json& user, const std::string& path);
// `cfg` with its "memel" section's preset expanded to every option, as the layers get them
// (MemelOptions::expand_section; the trainer's own keys dump_every and monitor_at kept as
// given). What --print-config shows and config.resolved.json records; expanding twice
// changes nothing. Configs are compared in this form (a preset and its spelled-out
// options are the same run).
json with_memel_expanded(const json& cfg);
void apply_set(json& cfg, const std::string& assignment);

// Parses JSON text (comments allowed), refusing a key that appears twice in one object;
// errors start with `what` (e.g. the file name) and name the key's full path, prefixed
// by `path` (the --set key the text belongs to, or empty).
json parse_json_strict(const std::string& text, const std::string& what, const std::string& path = "");
// The value of `--set key=text` (or of a --sweep value): JSON when the text starts like
// JSON (then it must parse; the error names `key`), otherwise the text as a string.
json parse_set_value(const std::string& key, const std::string& text);

// The run seed, cfg["seed"]: any integer from 0 to 2^64-1 (the engine's seeds are
// uint64); anything else throws naming the value. resolve_config stores it as an
// unsigned JSON integer.
uint64_t config_seed(const json& cfg);

// Typed access with a clear error (used by tasks).
double get_num(const json& j, const std::string& key, const std::string& where);
int64_t get_int(const json& j, const std::string& key, const std::string& where);
std::string get_str(const json& j, const std::string& key, const std::string& where);
bool get_bool(const json& j, const std::string& key, const std::string& where);

}  // namespace memel::train
