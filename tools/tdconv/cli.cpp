// The command line as a whole: dispatch to a subcommand, help, and the mapping of errors to exit statuses.
#include <exception>
#include <iostream>
#include <map>
#include <new>

#include "cli.hpp"
#include "io/interrupt.hpp"
#include "commands.hpp"
#include "tdconv/error.hpp"

namespace {

using tdconv::cli::Args;

// Library errors name problem fields; on the command line the user knows them as options.
std::string as_option(const std::string& subject) {
  static const std::map<std::string, std::string> options{
      {"stride", "--stride"},         {"dilation", "--dilation"},       {"padding", "--padding"},
      {"output_padding", "--output-padding"}, {"output_size", "--output-size"}, {"groups", "--groups"},
      {"kernel", "--weight / kernel"}, {"input", "--input"},           {"batch", "--input"},
      {"in_channels", "--input"},     {"out_channels", "--weight"},
      {"src", "--input"},             {"weights", "--weight"},
      {"dst", "output size (from --input, --padding, --stride, --dilation)"}};
  const auto it = options.find(subject);
  return it == options.end() ? subject : it->second;
}

bool wants_help(const Args& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

int dispatch(const std::string& command, const Args& args) {
  if (command == "conv" || command == "conv-transpose") return tdconv::cli::run_operation(command, args);
  if (command == "shape") return tdconv::cli::run_shape(args);
  if (command == "explain") return tdconv::cli::run_explain(args);
  if (command == "demo") return tdconv::cli::run_demo(args);
  throw tdconv::Error(command, "unknown command '" + command + "'; commands: conv, conv-transpose, shape, explain, demo");
}

}  // namespace

namespace tdconv::cli {

int run_cli(const Args& all) {
  io::remove_pending_output_on_signal();
  if (all.empty() || all[0] == "--help" || all[0] == "-h" || all[0] == "help") {
    std::cout << tdconv::cli::help_text(all.size() > 1 ? all[1] : "");
    return all.empty() ? 2 : 0;
  }
  const std::string command = all[0];
  const Args args(all.begin() + 1, all.end());
  try {
    if (wants_help(args)) {
      std::cout << tdconv::cli::help_text(command);
      return 0;
    }
    return dispatch(command, args);
  } catch (const tdconv::Error& e) {
    const std::string rule = std::string(e.what()).substr(e.subject().size() + 2);
    std::cerr << "tdconv " << command << ": " << as_option(e.subject()) << ": " << rule << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "tdconv " << command << ": out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tdconv " << command << ": internal error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace tdconv::cli
