// The oneDNN peer when the build found no oneDNN (libdnnl-dev): reported as unavailable, never an error.
#include "onednn_peer.hpp"

namespace bench {

PeerStatus onednn_status() {
  PeerStatus s;
  s.detail = "not compiled in (oneDNN was not found at build time; install libdnnl-dev and reconfigure)";
  return s;
}

OneDnnRuns run_onednn(const tdconv::Problem&, const Buffer&, const Buffer&, const Buffer*, const TimingRule&) {
  OneDnnRuns runs;
  runs.any.reason = runs.plain.reason = "oneDNN not compiled in";
  return runs;
}

}  // namespace bench
