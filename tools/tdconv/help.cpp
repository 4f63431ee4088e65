// Help texts, with examples, for `tdconv --help` and `tdconv COMMAND --help`.
#include "commands.hpp"

namespace tdconv::cli {
namespace {

const char* const kOverview = R"(tdconv: transposed and dilated convolution, exactly as PyTorch, TensorFlow/Keras and ONNX compute them.

Usage:
  tdconv conv           --input X.npy --weight W.npy [--bias B.npy] --output Y.npy [OPTIONS]
  tdconv conv-transpose --input X.npy --weight W.npy [--bias B.npy] --output Y.npy [OPTIONS]
  tdconv shape   conv|conv-transpose --input SIZES --kernel SIZES [OPTIONS] [--json]
  tdconv explain conv|conv-transpose --x ARRAY --w ARRAY [OPTIONS]
  tdconv demo

Run 'tdconv COMMAND --help' for the options of one command.
Exit status: 0 success, 2 bad usage or invalid input (stderr names the option or file), 1 internal error.
)";

const char* const kGeometry = R"(
Geometry options (a list gives one value per spatial dimension, outermost first; one value applies to all):
  --stride S[,S...]            stride (default 1)
  --dilation D[,D...]          dilation; 1 means a dense kernel (default 1)
  --padding P                  INT, a list (1,2), per-dimension BEGIN:END items (256:0, 1:2,0:1), or
                               valid | same (TensorFlow/Keras) | same_upper | same_lower (ONNX auto_pad)
                               conv pads its input; conv-transpose crops its full output (default 0)
  --groups G                   groups (default 1; groups = channels for depthwise)
)";

const char* const kTransposeOnly = R"(  --output-padding P[,P...]    conv-transpose: elements appended at the end, < max(stride, dilation)
  --output-size N[,N...]       conv-transpose: the wanted output size (PyTorch output_size with numeric
                               padding, TensorFlow output_shape with same/valid, ONNX output_shape with
                               same_upper/same_lower); not with --output-padding
)";

const char* const kOperation = R"(
Files are NumPy .npy (C order, little-endian float32 '<f4' or float64 '<f8'; the output has the input's dtype):
  --input X.npy                (N, C_in, spatial...) or, with --layout channels_last, (N, spatial..., C_in)
  --weight W.npy               torch layout: conv (C_out, C_in/groups, k...), conv-transpose (C_in, C_out/groups, k...)
                               tf layout:    conv (k..., C_in/groups, C_out), conv-transpose (k..., C_out/groups, C_in)
  --bias B.npy                 (C_out,), added to every output element
  --output Y.npy               written whole or not at all
  --layout channels_first|channels_last     (default channels_first)
  --weight-layout torch|tf                  (default torch)
  --max-memory BYTES           refuse problems needing more (suffix K, M, G; default half the RAM)
)";

std::string operation_help(const std::string& command) {
  const bool transpose = command == "conv-transpose";
  std::string s = "tdconv " + command + ": " +
                  (transpose ? "transposed convolution (deconvolution): every input element scatters its scaled\n"
                               "kernel into the output at input index * stride + tap * dilation - pad_begin.\n"
                             : "convolution (cross-correlation, as in every framework), dilated if --dilation > 1:\n"
                               "output[o] = sum_k input[o * stride + k * dilation - pad_begin] * weight[k].\n");
  s += kOperation;
  s += kGeometry;
  if (transpose) s += kTransposeOnly;
  if (transpose) {
    s += R"(
Examples:
  tdconv conv-transpose --input x.npy --weight w.npy --output y.npy --stride 2 --padding 1 --output-padding 1
  tdconv conv-transpose --input x.npy --weight w.npy --output y.npy --stride 2 --padding same \
      --layout channels_last --weight-layout tf          # Keras Conv2DTranspose(padding='same')
  tdconv conv-transpose --input x.npy --weight w.npy --output y.npy --stride 2 --padding 1 --output-size 64,64
)";
  } else {
    s += R"(
Examples:
  tdconv conv --input x.npy --weight w.npy --bias b.npy --output y.npy --dilation 2 --padding 2
  tdconv conv --input x.npy --weight w.npy --output y.npy --dilation 256 --padding 256:0   # causal (WaveNet)
  tdconv conv --input x.npy --weight w.npy --output y.npy --padding same --groups 32       # depthwise, TF 'same'
)";
  }
  return s;
}

const char* const kShape = R"(tdconv shape: output size and padding for given settings, no tensors needed; what each padding
convention would give; and the same layer in PyTorch, Keras/TensorFlow and ONNX terms (or a plain statement that
one layer of that framework cannot express it, with the extra step it needs).

Usage: tdconv shape conv|conv-transpose --input SIZES --kernel SIZES [OPTIONS] [--json]
  --input H[,W...]             spatial input size; its length sets the number of spatial dims (1 to 3)
  --kernel K[,K...]            kernel size
  --in-channels C, --out-channels C, --batch N, --layout L   (only for the tensor shapes shown; default groups)
  --json                       machine-readable output
)";

const char* const kShapeExamples = R"(
Examples:
  tdconv shape conv-transpose --input 64,64 --kernel 3 --stride 2 --padding same
  tdconv shape conv-transpose --input 4 --kernel 3 --padding 2          # (4 - 1) * 1 + 3 - 2 * 2 = 2
  tdconv shape conv --input 33,33 --kernel 3 --dilation 18 --padding 18 --json
  tdconv shape conv --input 16,16,16 --kernel 3 --stride 2 --padding same_lower
)";

const char* const kExplain = R"(tdconv explain: a step-by-step walk-through of one small single-channel operation given inline.
Transposed: the output-size arithmetic, each input element's scaled kernel placed into the full output, the full
output, the padding carved off, the result. Convolution: the kernel with its holes, the effective kernel size,
the output-size arithmetic, the padded input and which inputs each output reads.

Usage: tdconv explain conv|conv-transpose --x ARRAY --w ARRAY [OPTIONS]
  --x ARRAY, --w ARRAY         nested lists, 1 to 3 levels deep (1D to 3D), at most 256 numbers each
)";

const char* const kExplainExamples = R"(
Examples:
  tdconv explain conv-transpose --x "[[1,2],[3,4]]" --w "[[1,1,1],[0,0,0],[-1,-1,-1]]" --stride 2 --padding 1
  tdconv explain conv-transpose --x "[2,3]" --w "[1,2,3]" --stride 2
  tdconv explain conv --x "[1,2,3,4,5,6,7]" --w "[1,0,-1]" --dilation 2 --padding same
  tdconv explain conv --x "[[[1,2],[3,4]],[[5,6],[7,8]]]" --w "[[[1]],[[1]]]" --padding 0,1,0
)";

const char* const kDemo = R"(tdconv demo: the worked examples of the study page (1D and 2D transposed convolution, the output-size
formula, MobileNet's fixed_padding, TensorFlow's 'same', the channels-last mistake) and two dilated convolutions,
explained step by step and checked against the numbers worked out by hand. Exits 1 if any result differs.

Usage: tdconv demo

Example:
  tdconv demo | less      # every walk-through; the last line says whether all results match
)";

}  // namespace

std::string help_text(const std::string& command) {
  if (command == "conv" || command == "conv-transpose") return operation_help(command);
  if (command == "shape") return std::string(kShape) + kGeometry + kTransposeOnly + kShapeExamples;
  if (command == "explain") return std::string(kExplain) + kGeometry + kTransposeOnly + kExplainExamples;
  if (command == "demo") return kDemo;
  return kOverview;
}

}  // namespace tdconv::cli
