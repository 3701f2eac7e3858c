#include "train/config.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_int.h"
#include "data/unicode.h"
#include "memel/options.h"

namespace memel::train {

namespace {

// Sections whose contents are not checked here (their owners validate them).
bool free_form(const std::string& path) {
  return path == "model.config" || path == "memel" || path == "data.options" || path == "model.overrides";
}

const char* type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

bool compatible(const json& def, const json& val) {
  if (def.is_null()) return true;  // optional (null default): any value
  if (val.is_null()) return true;  // null resets to "unset"
  if (def.is_number_integer()) return json_is_int64(val, false);  // not above INT64_MAX
  if (def.is_number()) return val.is_number();
  if (def.is_boolean()) return val.is_boolean();
  if (def.is_string()) return val.is_string();
  if (def.is_array()) return val.is_array();
  if (def.is_object()) return val.is_object();
  return false;
}

// Bytes outside printable ASCII as \xHH (for messages about malformed input).
std::string escaped(const std::string& s) {
  std::string r;
  char buf[8];
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      r += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      r += buf;
    }
  }
  return r;
}

// The run seed: a JSON integer from 0 to 2^64-1 (nlohmann keeps values above INT64_MAX as
// unsigned; a float or a negative number is refused).
uint64_t seed_of(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  std::string got = v.is_number() || v.is_null() ? v.dump() : std::string(type_of(v)) + " (" + v.dump() + ")";
  if (v.is_number_integer()) got += " (negative)";
  if (v.is_number_float() && v.get<double>() >= 18446744073709551616.0) got += " (above 2^64-1)";
  MEMEL_FAIL("[config] seed: expected an integer from 0 to 18446744073709551615 (2^64-1), got ", got);
}

}  // namespace

void merge_checked(json& def, const json& user, const std::string& path) {
  MEMEL_CHECK(user.is_object(), "[config] ", path.empty() ? "the configuration" : path, ": expected an object, got ",
              type_of(user));
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string key = path.empty() ? it.key() : path + "." + it.key();
    if (!def.contains(it.key())) {
      std::string known;
      for (auto d = def.begin(); d != def.end(); ++d) known += (known.empty() ? "" : ", ") + d.key();
      MEMEL_FAIL("[config] unknown key '", key, "' (known here: ", known, ")");
    }
    json& d = def[it.key()];
    if (free_form(key)) {
      if (d.is_object() && it.value().is_object())
        d.update(it.value());
      else
        d = it.value();
      continue;
    }
    if (key == "seed") {  // uint64, unlike the other integer keys
      d = seed_of(it.value());
      continue;
    }
    MEMEL_CHECK(compatible(d, it.value()), "[config] ", key, ": expected ",
                !d.is_number_integer()          ? type_of(d)
                : it.value().is_number_integer() ? "an integer up to 9223372036854775807 (int64)"
                                                 : "an integer",
                ", got ", type_of(it.value()), " (", it.value().dump(), ")");
    if (d.is_object() && it.value().is_object())
      merge_checked(d, it.value(), key);
    else
      d = it.value();
  }
}

void apply_set(json& cfg, const std::string& a) {
  const size_t eq = a.find('=');
  MEMEL_CHECK(eq != std::string::npos && eq > 0, "[config] --set expects key.path=value, got '", a, "'");
  MEMEL_CHECK(cfg.is_object(), "[config] --set ", a, ": the configuration is not a JSON object");
  // JSON text must be UTF-8: a bare-string value or a key with other bytes would make
  // every later dump of the configuration throw.
  MEMEL_CHECK(unicode::utf8_valid(a), "[config] --set '", escaped(a), "': not valid UTF-8");
  const std::string path = a.substr(0, eq), text = a.substr(eq + 1);
  const json value = parse_set_value(path, text);
  json* cur = &cfg;
  size_t start = 0;
  for (;;) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    MEMEL_CHECK(!part.empty(), "[config] --set: empty key in '", path, "'");
    if (dot == std::string::npos) {
      (*cur)[part] = value;
      return;
    }
    // A section set to null is off (e.g. "memel": null): a key below it would silently
    // turn it back on with defaults, so the whole section must be given instead.
    MEMEL_CHECK(!cur->contains(part) || !(*cur)[part].is_null(), "[config] --set ", path, ": '",
                path.substr(0, dot), "' is null (off) at this point; set the whole section instead, e.g. --set ",
                path.substr(0, dot), "='{\"", path.substr(dot + 1), "\": ...}'");
    if (!cur->contains(part) || !(*cur)[part].is_object()) (*cur)[part] = json::object();
    cur = &(*cur)[part];
    start = dot + 1;
  }
}

json with_memel_expanded(const json& cfg) {
  json out = cfg;
  if (out.is_object() && out.contains("memel"))
    out["memel"] = MemelOptions::expand_section(out["memel"], {"dump_every", "monitor_at"});
  return out;
}

json resolve_config(const std::string& file, const std::vector<std::string>& sets) {
  json user = json::object();
  if (!file.empty()) {
    std::error_code ec;
    MEMEL_CHECK(!std::filesystem::is_directory(file, ec), "[config] ", file, " is a directory, expected a JSON file");
    std::ifstream f(file, std::ios::binary);
    MEMEL_CHECK(f.good(), "[config] cannot open config file ", file);
    std::stringstream text;
    text << f.rdbuf();
    MEMEL_CHECK(!f.bad(), "[config] cannot read config file ", file);
    user = parse_json_strict(text.str(), "[config] " + file);
    MEMEL_CHECK(user.is_object(), "[config] ", file, ": the configuration must be a JSON object, got ", type_of(user));
  }
  for (const std::string& s : sets) apply_set(user, s);
  MEMEL_CHECK(user.is_object(), "[config] the configuration must be a JSON object");
  MEMEL_CHECK(user.contains("task") && user["task"].is_string(), "[config] missing \"task\" (one of: "
              "image-classification, text-classification, mlm-pretrain, nowcasting)");
  json cfg = default_config(user["task"].get<std::string>());
  merge_checked(cfg, user, "");
  cfg["seed"] = config_seed(cfg);  // one representation (unsigned), whether given or default
  return cfg;
}

namespace {

// nlohmann's parse with a check for duplicate keys (memel::Error naming the key); syntax
// errors propagate as json::exception.
json parse_no_duplicate_keys(const std::string& text, const std::string& what, const std::string& path) {
  // One frame per open object or array: how its parent names it (a key, or an index in
  // a list), and the keys seen so far (objects) or the index of the next element
  // (arrays). Full paths are built only for a message (deep nesting stays linear).
  struct Frame {
    bool object;
    std::string name;
    std::set<std::string> keys;
    std::string key;
    int64_t index = 0;
  };
  std::vector<Frame> stack;
  auto path_of = [&](size_t depth, const std::string* last) {
    std::string p = path;
    auto add = [&p](const std::string& part) {
      if (part.empty() || part[0] == '[' || p.empty()) p += part;
      else p += "." + part;
    };
    for (size_t i = 1; i < depth; ++i) add(stack[i].name);
    if (last) add(*last);
    return p;
  };
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        std::string name;
        if (!stack.empty()) {
          Frame& f = stack.back();
          name = f.object ? f.key : "[" + std::to_string(f.index++) + "]";
        }
        stack.push_back({event == json::parse_event_t::object_start, std::move(name), {}, {}, 0});
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        if (!stack.empty()) stack.pop_back();
        break;
      case json::parse_event_t::key: {
        Frame& f = stack.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second) {
          const std::string in = path_of(stack.size(), nullptr);
          MEMEL_FAIL(what, ": key '", path_of(stack.size(), &f.key), "' appears twice",
                     in.empty() ? std::string() : " in '" + in + "'",
                     " (a key may be given only once; JSON readers would keep one of them silently)");
        }
        break;
      }
      case json::parse_event_t::value:
        if (!stack.empty() && !stack.back().object) ++stack.back().index;
        break;
    }
    return true;
  };
  return json::parse(text, callback, /*allow_exceptions=*/true, /*ignore_comments=*/true);
}

}  // namespace

json parse_json_strict(const std::string& text, const std::string& what, const std::string& path) {
  try {
    return parse_no_duplicate_keys(text, what, path);
  } catch (const json::exception& e) {  // parse errors, and numbers out of range (1e999)
    MEMEL_FAIL(what, " is not valid JSON: ", e.what());
  }
}

json parse_set_value(const std::string& key, const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const bool looks_json = (i < text.size() && ((text[i] != '\0' && std::strchr("{[\"-", text[i]) != nullptr) ||
                                                std::isdigit(static_cast<unsigned char>(text[i])))) ||
                          text == "true" || text == "false" || text == "null";
  if (!looks_json) return text;  // a bare word needs no quotes: --set memel.mode=rd
  try {
    return parse_no_duplicate_keys(text, "[config] --set " + key, key);
  } catch (const json::exception& e) {
    const bool container = i < text.size() && (text[i] == '{' || text[i] == '[');
    MEMEL_FAIL("[config] --set ", key, ": the value '", text, "' is not valid JSON (", e.what(), ")",
               container ? std::string()
                         : str_cat("; a value that starts like JSON ({, [, \", a digit, -, true, false, null) must "
                                   "be JSON; for a string write --set ", key, "='\"", text, "\"'"));
  }
}

uint64_t config_seed(const json& cfg) {
  MEMEL_CHECK(cfg.is_object() && cfg.contains("seed"), "[config] seed: missing (expected an integer from 0 to "
              "18446744073709551615)");
  return seed_of(cfg.at("seed"));
}

double get_num(const json& j, const std::string& key, const std::string& where) {
  MEMEL_CHECK(j.contains(key) && j[key].is_number(), "[config] ", where, ".", key, ": expected a number");
  return j[key].get<double>();
}
int64_t get_int(const json& j, const std::string& key, const std::string& where) {
  MEMEL_CHECK(j.contains(key), "[config] ", where, ".", key, ": missing (expected an integer)");
  return json_int64_checked(j[key], false, "[config] ", where, ".", key, ": expected an integer (int64)");
}
std::string get_str(const json& j, const std::string& key, const std::string& where) {
  MEMEL_CHECK(j.contains(key) && j[key].is_string(), "[config] ", where, ".", key, ": expected a string");
  return j[key].get<std::string>();
}
bool get_bool(const json& j, const std::string& key, const std::string& where) {
  MEMEL_CHECK(j.contains(key) && j[key].is_boolean(), "[config] ", where, ".", key, ": expected true or false");
  return j[key].get<bool>();
}

}  // namespace memel::train
