#pragma once
// What tdconv-bench tells people (a table on stdout) and scripts (--json).
#include <ostream>
#include <string>
#include <vector>

#include "results.hpp"

namespace bench {

struct Layer;
// --list: one line per layer, nothing measured.
void print_layer_list(std::ostream& out, const std::vector<Layer>& layers);

void print_header(std::ostream& out, const RunInfo& info);
// The table, one row per layer, then the details of each peer's runs, warnings, and the geometric means.
void print_report(std::ostream& out, const RunInfo& info, const std::vector<LayerResult>& results);
void write_json(const std::string& path, const RunInfo& info, const std::vector<LayerResult>& results);

}  // namespace bench
