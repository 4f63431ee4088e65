#pragma once
// The subcommands of `tdconv`. Each takes the arguments after its name and returns the exit status; errors are
// thrown as tdconv::Error (exit 2) and reported by main.
#include <string>
#include <vector>

namespace tdconv::cli {

using Args = std::vector<std::string>;

int run_operation(const std::string& command, const Args& args);  // conv, conv-transpose
int run_shape(const Args& args);
int run_explain(const Args& args);
int run_demo(const Args& args);

// Help text of a command ("" for the overview).
std::string help_text(const std::string& command);

}  // namespace tdconv::cli
