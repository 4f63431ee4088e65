#include "options.hpp"

#include <charconv>

#include "tdconv/error.hpp"

namespace tdconv::cli {
namespace {

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

}  // namespace

Options::Options(const std::vector<std::string>& args, const std::set<std::string>& valued,
                 const std::set<std::string>& switches, const std::string& command)
    : command_(command) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      throw Error(arg, "unexpected argument '" + arg + "' for 'tdconv " + command + "'; options start with --");
    }
    std::string name = arg;
    std::optional<std::string> value;
    if (const std::size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const bool takes_value = valued.count(name) != 0;
    if (!takes_value && switches.count(name) == 0) {
      throw Error(name, "unknown option " + name + " for 'tdconv " + command + "'; see 'tdconv " + command +
                            " --help'");
    }
    if (values_.count(name) != 0) throw Error(name, name + " is given more than once");
    if (!takes_value) {
      if (value) throw Error(name, name + " takes no value");
      values_[name] = "";
      continue;
    }
    if (!value) {
      // A following option means this one's value was forgotten (negative numbers start with a single '-').
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0) throw Error(name, name + " needs a value");
      value = args[++i];
    }
    values_[name] = *value;
  }
}

const std::string& Options::required(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw Error(name, name + " is required for 'tdconv " + command_ + "'");
  return it->second;
}

std::optional<std::string> Options::get(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::int64_t parse_int(const std::string& text, const std::string& option) {
  std::int64_t v = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, v);
  if (text.empty() || ec != std::errc() || end != last) {
    throw Error(option, option + " needs an integer, got '" + text + "'");
  }
  return v;
}

Dims parse_dims(const std::string& text, const std::string& option, int spatial_dims, std::int64_t fill) {
  const auto parts = split(text, ',');
  if (parts.size() != 1 && static_cast<int>(parts.size()) != spatial_dims) {
    throw Error(option, option + " '" + text + "' needs one value or " + std::to_string(spatial_dims) +
                            " (one per spatial dimension), got " + std::to_string(parts.size()));
  }
  Dims v{fill, fill, fill};
  for (int d = 0; d < spatial_dims; ++d) v[d] = parse_int(parts[parts.size() == 1 ? 0 : d], option);
  return v;
}

PaddingRequest parse_padding(const std::string& text, int spatial_dims) {
  PaddingRequest r;
  static const std::map<std::string, PaddingMode> keywords{{"valid", PaddingMode::valid},
                                                           {"same", PaddingMode::same},
                                                           {"same_upper", PaddingMode::same_upper},
                                                           {"same_lower", PaddingMode::same_lower}};
  if (const auto it = keywords.find(text); it != keywords.end()) {
    r.mode = it->second;
    return r;
  }
  const auto items = split(text, ',');
  if (items.size() != 1 && static_cast<int>(items.size()) != spatial_dims) {
    throw Error("--padding", "--padding '" + text + "' needs one item or " + std::to_string(spatial_dims) +
                                 " (one per spatial dimension), or valid|same|same_upper|same_lower");
  }
  for (int d = 0; d < spatial_dims; ++d) {
    const auto pair = split(items[items.size() == 1 ? 0 : d], ':');
    if (pair.size() > 2) throw Error("--padding", "--padding item '" + items[d] + "' must be INT or BEGIN:END");
    r.begin[d] = parse_int(pair[0], "--padding");
    r.end[d] = parse_int(pair.back(), "--padding");
  }
  return r;
}

PaddingRequest padding_request(const Options& o, int spatial_dims) {
  PaddingRequest r = parse_padding(o.get("--padding").value_or("0"), spatial_dims);
  if (auto v = o.get("--output-padding")) r.output_padding = parse_dims(*v, "--output-padding", spatial_dims, 0);
  if (auto v = o.get("--output-size")) r.output_size = parse_dims(*v, "--output-size", spatial_dims, 1);
  return r;
}

Dims stride_option(const Options& o, int spatial_dims) {
  return parse_dims(o.get("--stride").value_or("1"), "--stride", spatial_dims, 1);
}

Dims dilation_option(const Options& o, int spatial_dims) {
  return parse_dims(o.get("--dilation").value_or("1"), "--dilation", spatial_dims, 1);
}

Layout parse_layout(const std::string& text) {
  if (text == "channels_first") return Layout::channels_first;
  if (text == "channels_last") return Layout::channels_last;
  throw Error("--layout", "--layout must be channels_first or channels_last, got '" + text + "'");
}

WeightLayout parse_weight_layout(const std::string& text) {
  if (text == "torch") return WeightLayout::torch;
  if (text == "tf") return WeightLayout::tf;
  throw Error("--weight-layout", "--weight-layout must be torch or tf, got '" + text + "'");
}

std::set<std::string> geometry_options() {
  return {"--stride", "--dilation", "--padding", "--output-padding", "--output-size", "--groups"};
}

}  // namespace tdconv::cli
