#pragma once
// Errors raised by tdconv. Every error names the parameter (or file) it is about and the rule that was broken,
// so a caller can print `what()` as the first line of a message and the user knows what to fix.
#include <stdexcept>
#include <string>

namespace tdconv {

class Error : public std::runtime_error {
 public:
  // `subject` is the parameter name ("stride", "padding") or a file path; `rule` says what is wrong with it.
  Error(std::string subject, const std::string& rule)
      : std::runtime_error(subject + ": " + rule), subject_(std::move(subject)) {}
  const std::string& subject() const noexcept { return subject_; }

 private:
  std::string subject_;
};

}  // namespace tdconv
