// The oneDNN peer when the build found no oneDNN (libdnnl-dev): reported as unavailable, never an error.
#include "onednn_peer.hpp"

namespace bench {

PeerStatus onednn_status() {
  PeerStatus s;
  s.detail = "not compiled in (oneDNN was not found at build time; install libdnnl-dev and reconfigure)";
  return s;
}

struct OneDnnVariant::Prepared {};

OneDnnVariant::OneDnnVariant(const tdconv::Problem&, Pass, bool, const Buffer&, const Buffer&, const Buffer&) {
  failure_.reason = "oneDNN not compiled in";
}
OneDnnVariant::~OneDnnVariant() = default;
void OneDnnVariant::run() {}
void OneDnnVariant::refuse(const std::string& what) { failure_.reason = what; }
PeerRun OneDnnVariant::result(const Timing&, const Buffer*, const std::vector<std::int64_t>&) { return failure_; }

}  // namespace bench
