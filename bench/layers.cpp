// Reads and checks the suite file. Schema (format 1):
//   {"format": 1, "about": "...", "layers": [LAYER, ...]}
//   LAYER: name, op ("conv" | "conv_transpose"), pass ("forward" | "backward"), batch, in_channels, out_channels,
//          input, kernel, stride, dilation (one positive integer per spatial dimension, 1 to 3 dimensions),
//          padding (per dimension a number for both sides or [begin, end]), groups,
//          output_padding (conv_transpose only, required there), and optionally source (text) and
//          flops (2 * nominal multiply-adds; checked against the layer when given).
// Every field is required unless said otherwise and unknown fields are errors: a misspelt "dilaton" must not
// quietly benchmark a dense kernel.
#include "layers.hpp"

#include <cctype>
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "tdconv/error.hpp"

namespace bench {
namespace {

using nlohmann::json;

// Builds error messages that say where in the file the problem is.
class Where {
 public:
  Where(std::string file, std::string layer) : file_(std::move(file)), layer_(std::move(layer)) {}
  [[noreturn]] void fail(const std::string& field, const std::string& rule) const {
    throw SuiteError(file_ + ": " + layer_ + (field.empty() ? "" : ": " + field) + ": " + rule);
  }

 private:
  std::string file_;
  std::string layer_;
};

const json& require(const json& obj, const char* field, const Where& where) {
  const auto it = obj.find(field);
  if (it == obj.end()) where.fail(field, "missing (required)");
  return *it;
}

std::int64_t as_integer(const json& v, const std::string& field, std::int64_t lowest, const Where& where) {
  // Booleans and 2.0 are rejected: the file is written by hand, and 2.0 is more likely a mistake than a size.
  if (!v.is_number_integer()) where.fail(field, "expected an integer, got " + v.dump());
  const auto value = v.get<std::int64_t>();
  if (value < lowest) where.fail(field, "must be >= " + std::to_string(lowest) + ", got " + std::to_string(value));
  return value;
}

std::string as_string(const json& v, const std::string& field, const Where& where) {
  if (!v.is_string()) where.fail(field, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

const json& as_dim_list(const json& v, const std::string& field, std::size_t dims, const Where& where) {
  if (!v.is_array()) where.fail(field, "expected a list with one entry per spatial dimension, got " + v.dump());
  if (v.size() != dims) {
    where.fail(field, "has " + std::to_string(v.size()) + " entries but the input has " + std::to_string(dims) +
                          " spatial dimensions");
  }
  return v;
}

tdconv::Dims dims_of(const json& layer, const char* field, std::size_t dims, std::int64_t lowest,
                     const Where& where) {
  const json& list = as_dim_list(require(layer, field, where), field, dims, where);
  tdconv::Dims out{1, 1, 1};
  if (lowest == 0) out = {0, 0, 0};
  for (std::size_t d = 0; d < dims; ++d) {
    out[d] = as_integer(list[d], std::string(field) + "[" + std::to_string(d) + "]", lowest, where);
  }
  return out;
}

// padding: per dimension a number (both sides) or [begin, end].
void read_padding(const json& layer, std::size_t dims, tdconv::Problem& p, const Where& where) {
  const json& list = as_dim_list(require(layer, "padding", where), "padding", dims, where);
  for (std::size_t d = 0; d < dims; ++d) {
    const std::string field = "padding[" + std::to_string(d) + "]";
    const json& v = list[d];
    if (v.is_array()) {
      if (v.size() != 2) where.fail(field, "expected a number or [begin, end], got " + v.dump());
      p.pad_begin[d] = as_integer(v[0], field + "[0]", 0, where);
      p.pad_end[d] = as_integer(v[1], field + "[1]", 0, where);
    } else {
      p.pad_begin[d] = p.pad_end[d] = as_integer(v, field, 0, where);
    }
  }
}

tdconv::Op read_op(const json& layer, const Where& where) {
  const std::string op = as_string(require(layer, "op", where), "op", where);
  if (op == "conv") return tdconv::Op::conv;
  if (op == "conv_transpose") return tdconv::Op::conv_transpose;
  where.fail("op", "expected \"conv\" or \"conv_transpose\", got \"" + op + "\"");
}

Pass read_pass(const json& layer, const Where& where) {
  const std::string pass = as_string(require(layer, "pass", where), "pass", where);
  if (pass == "forward") return Pass::forward;
  if (pass == "backward") return Pass::backward;
  where.fail("pass", "expected \"forward\" or \"backward\", got \"" + pass + "\"");
}

void check_known_fields(const json& layer, const Where& where) {
  static const std::set<std::string> known{"name",   "op",       "pass",     "batch",          "in_channels",
                                           "out_channels", "input", "kernel", "stride",        "padding",
                                           "output_padding", "dilation", "groups", "source",   "flops"};
  for (const auto& [key, value] : layer.items()) {
    if (!known.count(key)) where.fail(key, "unknown field");
  }
}

std::string read_name(const json& layer, std::set<std::string>& seen, const Where& where) {
  const std::string name = as_string(require(layer, "name", where), "name", where);
  if (name.empty()) where.fail("name", "must not be empty");
  for (char c : name) {
    // Names are used with --filter and as JSON keys by scripts: keep them plain.
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      where.fail("name", "may hold only letters, digits, '_', '-' and '.', got \"" + name + "\"");
    }
  }
  if (!seen.insert(name).second) where.fail("name", "\"" + name + "\" is used by an earlier layer too");
  return name;
}

void check_flops(const json& layer, const tdconv::Problem& p, const Where& where) {
  const auto it = layer.find("flops");
  if (it == layer.end()) return;
  if (!it->is_number() || it->is_boolean() || !(it->get<double>() > 0)) {
    where.fail("flops", "expected a positive number, got " + it->dump());
  }
  const double given = it->get<double>();
  const double nominal = 2 * tdconv::nominal_macs(p);
  if (std::abs(given - nominal) > 1e-9 * nominal) {
    where.fail("flops", "is " + it->dump() + " but 2 * the layer's nominal multiply-adds is " +
                            json(nominal).dump());
  }
}

Layer read_layer(const json& v, std::size_t index, std::set<std::string>& seen, const std::string& file) {
  const Where at_index(file, "layers[" + std::to_string(index) + "]");
  if (!v.is_object()) at_index.fail("", "expected an object, got " + v.dump());
  Layer layer;
  layer.name = read_name(v, seen, at_index);
  const Where where(file, "layers[" + std::to_string(index) + "] '" + layer.name + "'");
  check_known_fields(v, where);

  tdconv::Problem& p = layer.problem;
  p.op = read_op(v, where);
  layer.pass = read_pass(v, where);
  p.batch = as_integer(require(v, "batch", where), "batch", 1, where);
  p.in_channels = as_integer(require(v, "in_channels", where), "in_channels", 1, where);
  p.out_channels = as_integer(require(v, "out_channels", where), "out_channels", 1, where);
  p.groups = as_integer(require(v, "groups", where), "groups", 1, where);

  const json& input = require(v, "input", where);
  if (!input.is_array() || input.empty() || input.size() > 3) {
    where.fail("input", "expected a list of 1 to 3 spatial sizes, got " + input.dump());
  }
  const std::size_t dims = input.size();
  p.spatial_dims = static_cast<int>(dims);
  p.input = dims_of(v, "input", dims, 1, where);
  p.kernel = dims_of(v, "kernel", dims, 1, where);
  p.stride = dims_of(v, "stride", dims, 1, where);
  p.dilation = dims_of(v, "dilation", dims, 1, where);
  read_padding(v, dims, p, where);
  if (p.op == tdconv::Op::conv_transpose) {
    p.output_padding = dims_of(v, "output_padding", dims, 0, where);
  } else if (v.contains("output_padding")) {
    where.fail("output_padding", "only a conv_transpose has output padding");
  }
  if (v.contains("source")) layer.source = as_string(v["source"], "source", where);
  p.dtype = tdconv::DType::f32;
  p.weight_layout = tdconv::WeightLayout::torch;

  try {
    tdconv::validate(p);
  } catch (const tdconv::Error& e) {
    where.fail("", e.what());  // what() already names the field
  }
  check_flops(v, p, where);
  return layer;
}

}  // namespace

std::vector<Layer> load_layers(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SuiteError(path + ": cannot open the file");
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    throw SuiteError(path + ": not valid JSON: " + e.what());
  }
  const Where top(path, "top level");
  if (!doc.is_object()) top.fail("", "expected an object with \"format\" and \"layers\"");
  for (const auto& [key, value] : doc.items()) {
    if (key != "format" && key != "about" && key != "layers") top.fail(key, "unknown field");
  }
  if (as_integer(require(doc, "format", top), "format", 0, top) != 1) top.fail("format", "only format 1 is known");
  const json& list = require(doc, "layers", top);
  if (!list.is_array() || list.empty()) top.fail("layers", "expected a non-empty list of layers");

  std::vector<Layer> layers;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) layers.push_back(read_layer(list[i], i, seen, path));
  return layers;
}

}  // namespace bench
