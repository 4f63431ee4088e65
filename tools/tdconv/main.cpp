// tdconv: transposed and dilated convolution from the command line. Exit status: 0 success, 2 bad usage, invalid
// parameters or input files (first stderr line names the parameter or file and the rule), 1 internal error.
#include "cli.hpp"

int main(int argc, char** argv) { return tdconv::cli::run_cli(tdconv::cli::Args(argv + 1, argv + argc)); }
