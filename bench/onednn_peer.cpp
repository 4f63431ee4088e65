// The oneDNN peer (oneDNN 2.x C++ API). How a tdconv problem maps onto oneDNN:
//   - dilation counts from 0 in oneDNN: dilates = dilation - 1;
//   - conv: padding_l = pad_begin, padding_r = pad_end;
//   - conv_transpose -> deconvolution_forward. oneDNN's deconvolution output is
//       (src - 1) * stride + (k - 1) * (dilates + 1) + 1 - padding_l - padding_r,
//     so tdconv's crop-then-append (pad_begin, pad_end, output_padding) is padding_l = pad_begin and
//     padding_r = pad_end - output_padding, which is negative when output padding exceeds the end crop. oneDNN
//     accepts padding_r > -stride (it checks padding_r + stride > 0) and then writes zeros past the full output,
//     which is what tdconv and PyTorch do there; the output check below confirms it on every layer. When
//     output_padding - pad_end >= stride (possible only with dilation > stride) oneDNN cannot express the layer
//     and the peer reports it as unavailable.
//   - weights: oneDNN wants (g, o, i, k...) (or (o, i, k...) without groups) with o the dst-side channels of a
//     group and i the src side, for both primitives. PyTorch's conv weights (oc, ic/g, k...) are exactly that
//     in memory; PyTorch's transposed weights (ic, oc/g, k...) are (g, i, o, k...) in memory, which the user
//     memory descriptor expresses with strides, so the weights are never copied by hand.
//   - activations: (N, C, spatial...) with channels-first or channels-last strides.
#include "onednn_peer.hpp"

#include <algorithm>
#include <numeric>
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace bench {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;

struct Cpu {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
};
Cpu& cpu() {
  static Cpu c;
  return c;
}

// Dense strides for `dims` stored with the dimensions in `order` (outermost first).
memory::dims strides_in_order(const memory::dims& dims, const std::vector<int>& order) {
  memory::dims strides(dims.size());
  memory::dim step = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    strides[static_cast<std::size_t>(*it)] = step;
    step *= dims[static_cast<std::size_t>(*it)];
  }
  return strides;
}

memory::desc activation_md(const tdconv::Problem& p, std::int64_t channels, const tdconv::Dims& size) {
  memory::dims dims{p.batch, channels};
  for (int d = 0; d < p.spatial_dims; ++d) dims.push_back(size[d]);
  std::vector<int> order{0};  // N first; then C first or last
  if (p.layout == tdconv::Layout::channels_first) order.push_back(1);
  for (int d = 0; d < p.spatial_dims; ++d) order.push_back(2 + d);
  if (p.layout == tdconv::Layout::channels_last) order.push_back(1);
  return memory::desc(dims, kF32, strides_in_order(dims, order));
}

memory::dims weights_dims(const tdconv::Problem& p) {
  memory::dims dims;
  if (p.groups > 1) dims.push_back(p.groups);
  dims.push_back(p.out_channels / p.groups);
  dims.push_back(p.in_channels / p.groups);
  for (int d = 0; d < p.spatial_dims; ++d) dims.push_back(p.kernel[d]);
  return dims;
}

// The user's weights (torch layout) described in oneDNN's dimension order; see the top of the file.
memory::desc torch_weights_md(const tdconv::Problem& p) {
  const memory::dims dims = weights_dims(p);
  std::vector<int> order(dims.size());
  std::iota(order.begin(), order.end(), 0);
  if (p.op == tdconv::Op::conv_transpose) {
    const std::size_t o = p.groups > 1 ? 1 : 0;  // swap o and i: memory holds i outside o
    std::swap(order[o], order[o + 1]);
  }
  return memory::desc(dims, kF32, strides_in_order(dims, order));
}

memory::desc any_like(const memory::desc& md) { return memory::desc(md.dims(), kF32, Tag::any); }

struct Geometry {
  memory::dims strides, dilates, padding_l, padding_r;
};

Geometry geometry(const tdconv::Problem& p) {
  Geometry g;
  for (int d = 0; d < p.spatial_dims; ++d) {
    g.strides.push_back(p.stride[d]);
    g.dilates.push_back(p.dilation[d] - 1);
    g.padding_l.push_back(p.pad_begin[d]);
    g.padding_r.push_back(p.op == tdconv::Op::conv ? p.pad_end[d] : p.pad_end[d] - p.output_padding[d]);
  }
  return g;
}

// Empty when oneDNN can express the problem; otherwise why not.
std::string inexpressible(const tdconv::Problem& p) {
  const Geometry g = geometry(p);
  for (int d = 0; d < p.spatial_dims; ++d) {
    if (g.padding_r[static_cast<std::size_t>(d)] + g.strides[static_cast<std::size_t>(d)] <= 0) {
      return "output_padding - pad_end >= stride in dimension " + std::to_string(d) +
             ": oneDNN needs padding_r > -stride";
    }
  }
  return "";
}

dnnl::primitive_desc make_pd(const tdconv::Problem& p, dnnl::prop_kind kind, const memory::desc& src,
                             const memory::desc& weights, const memory::desc& dst) {
  const Geometry g = geometry(p);
  if (p.op == tdconv::Op::conv) {
    // convolution_auto lets oneDNN pick Winograd where it would win: its best case.
    dnnl::convolution_forward::desc d(kind, dnnl::algorithm::convolution_auto, src, weights, dst, g.strides,
                                      g.dilates, g.padding_l, g.padding_r);
    return dnnl::convolution_forward::primitive_desc(d, cpu().engine);
  }
  dnnl::deconvolution_forward::desc d(kind, dnnl::algorithm::deconvolution_direct, src, weights, dst, g.strides,
                                      g.dilates, g.padding_l, g.padding_r);
  return dnnl::deconvolution_forward::primitive_desc(d, cpu().engine);
}

// oneDNN's name for a blocked layout ("aBcd16b": dimensions outermost first, capitals blocked, then the blocks),
// so that the report says which layout `any` chose.
std::string format_name(const memory::desc& md) {
  const dnnl_memory_desc_t& c = md.data;
  if (c.format_kind != dnnl_blocked) return "?";
  const auto& b = c.format_desc.blocking;
  std::vector<int> order(static_cast<std::size_t>(c.ndims));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
  std::string name;
  for (int d : order) {
    const bool blocked = std::find(b.inner_idxs, b.inner_idxs + b.inner_nblks, d) != b.inner_idxs + b.inner_nblks;
    name += static_cast<char>((blocked ? 'A' : 'a') + d);
  }
  for (int k = 0; k < b.inner_nblks; ++k) name += std::to_string(b.inner_blks[k]) + static_cast<char>('a' + b.inner_idxs[k]);
  return name;
}

// `user` in the layout the primitive wants: the same memory when it already is, otherwise a reordered copy.
memory in_format(memory user, const memory::desc& wanted) {
  if (user.get_desc() == wanted) return user;
  memory converted(wanted, cpu().engine);
  dnnl::reorder(user, converted).execute(cpu().stream, user, converted);
  cpu().stream.wait();
  return converted;
}

}  // namespace

// What a run executes (one primitive forward, two backward) and what it produces: each output with the user's layout
// it is compared in and where it starts in tdconv's output buffer.
struct OneDnnVariant::Prepared {
  struct Step {
    dnnl::primitive primitive;
    std::unordered_map<int, memory> args;
  };
  struct Output {
    memory produced;
    memory::desc user;
    std::int64_t offset;
  };
  std::vector<Step> steps;
  std::vector<Output> outputs;
};

namespace {

// The forward pass: dst from src and weights.
void prepare_forward(const tdconv::Problem& p, bool any_activations, const Buffer& src, const Buffer& weights,
                     OneDnnVariant::Prepared& out, std::string& detail) {
  const memory::desc user_src = activation_md(p, p.in_channels, p.input);
  const memory::desc user_dst = activation_md(p, p.out_channels, tdconv::output_size(p));
  const memory::desc user_weights = torch_weights_md(p);
  const auto pd = make_pd(p, dnnl::prop_kind::forward_inference, any_activations ? any_like(user_src) : user_src,
                          any_like(user_weights), any_activations ? any_like(user_dst) : user_dst);
  auto& engine = cpu().engine;
  const memory src_mem = in_format(memory(user_src, engine, const_cast<float*>(src.data())), pd.src_desc(0));
  const memory weights_mem =
      in_format(memory(user_weights, engine, const_cast<float*>(weights.data())), pd.weights_desc(0));
  memory dst_mem(pd.dst_desc(0), engine);
  out.steps.push_back(
      {dnnl::primitive(pd), {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights_mem}, {DNNL_ARG_DST, dst_mem}}});
  out.outputs.push_back({dst_mem, user_dst, 0});
  detail = std::string(pd.impl_info_str()) + " src " + format_name(pd.src_desc(0)) + " wei " +
           format_name(pd.weights_desc(0)) + " dst " + format_name(pd.dst_desc(0));
}

// The backward-data and backward-weights primitives of one family (convolution or deconvolution), both hinted by
// its forward_training primitive.
template <class Forward, class BackwardData, class BackwardWeights>
std::pair<dnnl::primitive_desc, dnnl::primitive_desc> backward_pds(dnnl::algorithm algorithm,
                                                                   const memory::desc& src,
                                                                   const memory::desc& weights,
                                                                   const memory::desc& dst, const Geometry& g) {
  auto& engine = cpu().engine;
  const typename Forward::primitive_desc hint(
      typename Forward::desc(dnnl::prop_kind::forward_training, algorithm, src, weights, dst, g.strides, g.dilates,
                             g.padding_l, g.padding_r),
      engine);
  return {typename BackwardData::primitive_desc(
              typename BackwardData::desc(algorithm, src, weights, dst, g.strides, g.dilates, g.padding_l,
                                          g.padding_r),
              engine, hint),
          typename BackwardWeights::primitive_desc(
              typename BackwardWeights::desc(algorithm, src, weights, dst, g.strides, g.dilates, g.padding_l,
                                             g.padding_r),
              engine, hint)};
}

// The backward passes as a training step runs them: diff_src from diff_dst and the weights (backward data), then
// diff_weights from src and diff_dst (backward weights, no bias), both primitives hinted by the forward_training
// one. Each takes diff_dst in its own preferred format (reordered once, untimed, like every input).
void prepare_backward(const tdconv::Problem& p, bool any_activations, const Buffer& src, const Buffer& weights,
                      const Buffer& diff_dst, OneDnnVariant::Prepared& out, std::string& detail) {
  const memory::desc user_src = activation_md(p, p.in_channels, p.input);
  const memory::desc user_dst = activation_md(p, p.out_channels, tdconv::output_size(p));
  const memory::desc user_weights = torch_weights_md(p);
  const memory::desc src_md = any_activations ? any_like(user_src) : user_src;
  const memory::desc dst_md = any_activations ? any_like(user_dst) : user_dst;
  const memory::desc weights_md = any_like(user_weights);
  auto& engine = cpu().engine;
  const auto [data_pd, weights_pd] =
      p.op == tdconv::Op::conv
          ? backward_pds<dnnl::convolution_forward, dnnl::convolution_backward_data,
                         dnnl::convolution_backward_weights>(dnnl::algorithm::convolution_direct, src_md, weights_md,
                                                             dst_md, geometry(p))
          : backward_pds<dnnl::deconvolution_forward, dnnl::deconvolution_backward_data,
                         dnnl::deconvolution_backward_weights>(dnnl::algorithm::deconvolution_direct, src_md,
                                                               weights_md, dst_md, geometry(p));
  const memory user_diff_dst(user_dst, engine, const_cast<float*>(diff_dst.data()));
  const memory weights_mem =
      in_format(memory(user_weights, engine, const_cast<float*>(weights.data())), data_pd.weights_desc(0));
  const memory data_diff_dst = in_format(user_diff_dst, data_pd.diff_dst_desc(0));
  const memory weights_diff_dst = in_format(user_diff_dst, weights_pd.diff_dst_desc(0));
  const memory src_mem = in_format(memory(user_src, engine, const_cast<float*>(src.data())), weights_pd.src_desc(0));
  memory diff_src(data_pd.diff_src_desc(0), engine), diff_weights(weights_pd.diff_weights_desc(0), engine);
  out.steps.push_back({dnnl::primitive(data_pd),
                       {{DNNL_ARG_DIFF_DST, data_diff_dst}, {DNNL_ARG_WEIGHTS, weights_mem}, {DNNL_ARG_DIFF_SRC, diff_src}}});
  out.steps.push_back({dnnl::primitive(weights_pd),
                       {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_DIFF_DST, weights_diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights}}});
  out.outputs.push_back({diff_src, user_src, 0});
  out.outputs.push_back({diff_weights, user_weights, tdconv::element_count(tdconv::src_shape(p), "src")});
  detail = "data: " + std::string(data_pd.impl_info_str()) + " diff_src " + format_name(data_pd.diff_src_desc(0)) +
           "; weights: " + std::string(weights_pd.impl_info_str()) + " src " + format_name(weights_pd.src_desc(0)) +
           " diff_wei " + format_name(weights_pd.diff_weights_desc(0));
}

}  // namespace

OneDnnVariant::OneDnnVariant(const tdconv::Problem& p, Pass pass, bool any_activations, const Buffer& src,
                             const Buffer& weights, const Buffer& diff_dst) {
  if (const std::string why = inexpressible(p); !why.empty()) {
    failure_.reason = why;
    return;
  }
  try {
    auto prepared = std::make_unique<Prepared>();
    if (pass == Pass::forward) {
      prepare_forward(p, any_activations, src, weights, *prepared, detail_);
    } else {
      prepare_backward(p, any_activations, src, weights, diff_dst, *prepared, detail_);
    }
    prepared_ = std::move(prepared);
  } catch (const dnnl::error& e) {
    refuse(e.what());
  }
}

OneDnnVariant::~OneDnnVariant() = default;

void OneDnnVariant::refuse(const std::string& what) {
  prepared_.reset();
  failure_ = PeerRun{};
  failure_.reason = "oneDNN refused: " + what;
  failure_.failed = true;
}

void OneDnnVariant::run() {
  if (!prepared_) return;
  try {
    for (Prepared::Step& step : prepared_->steps) step.primitive.execute(cpu().stream, step.args);
    cpu().stream.wait();
  } catch (const dnnl::error& e) {
    refuse(e.what());
  }
}

PeerRun OneDnnVariant::result(const Timing& timing, const Buffer* tdconv_dst, const std::vector<std::int64_t>& parts) {
  if (!prepared_) return failure_;
  PeerRun run;
  run.available = true;
  run.timing = timing;
  run.detail = detail_;
  if (tdconv_dst != nullptr) {
    try {
      Buffer out(tdconv_dst->size());
      for (Prepared::Output& o : prepared_->outputs) {
        memory out_mem(o.user, cpu().engine, out.data() + o.offset);
        dnnl::reorder(o.produced, out_mem).execute(cpu().stream, o.produced, out_mem);
      }
      cpu().stream.wait();
      run.max_rel_error = max_relative_error(out.data(), tdconv_dst->data(), out.size(), parts);
    } catch (const dnnl::error& e) {
      refuse(e.what());
      return failure_;
    }
  }
  return run;
}

namespace {

std::string isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "isa #" + std::to_string(static_cast<int>(isa));
  }
}

}  // namespace

PeerStatus onednn_status() {
  PeerStatus s;
  s.available = true;
  const dnnl::version_t* v = dnnl::version();
  std::ostringstream text;
  text << "oneDNN " << v->major << "." << v->minor << "." << v->patch << " (ISA "
       << isa_name(dnnl::get_effective_cpu_isa()) << ", "
       << (DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP ? "OpenMP threads" : "non-OpenMP threads: --threads may not apply")
       << ")";
  s.detail = text.str();
  return s;
}

}  // namespace bench
