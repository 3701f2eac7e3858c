#pragma once
// Run configuration: JSON with a fixed schema. Every key a user writes must exist in
// the defaults (or sit in a free-form section such as model.config), with the same
// type; `--set a.b=value` edits one key (value parsed as JSON, else taken as a string).
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
void apply_set(json& cfg, const std::string& assignment);

// Typed access with a clear error (used by tasks).
double get_num(const json& j, const std::string& key, const std::string& where);
int64_t get_int(const json& j, const std::string& key, const std::string& where);
std::string get_str(const json& j, const std::string& key, const std::string& where);
bool get_bool(const json& j, const std::string& key, const std::string& where);

}  // namespace memel::train
