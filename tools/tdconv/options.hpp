#pragma once
// Command-line options: `--name value` or `--name=value`, in any order, each at most once. Values are parsed into
// tdconv's terms with errors that name the option and the rule (exit status 2).
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tdconv/shape.hpp"
#include "tdconv/types.hpp"

namespace tdconv::cli {

class Options {
 public:
  // `valued`: options that take a value; `switches`: options that take none (e.g. --json).
  Options(const std::vector<std::string>& args, const std::set<std::string>& valued,
          const std::set<std::string>& switches, const std::string& command);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::string& required(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
  std::string command_;
};

// A strictly parsed integer: optional '-', digits, nothing else, within int64.
std::int64_t parse_int(const std::string& text, const std::string& option);

// "2" or "2,1": one value for every spatial dimension or one per dimension.
Dims parse_dims(const std::string& text, const std::string& option, int spatial_dims, std::int64_t fill);

// The --padding forms: INT, a list, per-dim BEGIN:END items, or valid|same|same_upper|same_lower.
PaddingRequest parse_padding(const std::string& text, int spatial_dims);

// Options shared by every command that describes one operation: stride, dilation, padding, output padding and size.
PaddingRequest padding_request(const Options& o, int spatial_dims);
Dims stride_option(const Options& o, int spatial_dims);
Dims dilation_option(const Options& o, int spatial_dims);

Layout parse_layout(const std::string& text);
WeightLayout parse_weight_layout(const std::string& text);

// The options every operation command accepts, besides its own.
std::set<std::string> geometry_options();

}  // namespace tdconv::cli
