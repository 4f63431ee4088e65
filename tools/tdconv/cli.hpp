#pragma once
// The whole command line of `tdconv`, callable as a function (the executable's main and the fuzz target use it).
#include "commands.hpp"

namespace tdconv::cli {

// Runs `tdconv ARGS...` (args excludes the program name); prints to std::cout / std::cerr and returns the exit
// status: 0 success, 2 bad usage, invalid parameters or input files, 1 internal error.
int run_cli(const Args& args);

}  // namespace tdconv::cli
