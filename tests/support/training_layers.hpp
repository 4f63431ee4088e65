#pragma once
// Layers shaped like the suite's decoder and atrous layers, small enough for the reference: the backward passes'
// tests run them (adjoint_test.cpp, weight_gradient_test.cpp). Their adjoints and weight gradients take the gemm,
// Winograd, sub-pixel and depthwise paths; many channels both ways, batches, long 1D kernels, 3D, both layouts and
// weight layouts.
#include <vector>

namespace tdconv::testing {

inline const std::vector<const char*> kTrainingLayers = {
    "convT_mb2_g1_ic64_oc32_i6x5_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
    "convT_mb1_g1_ic40_oc24_i8x8_k3x3_s2x2_d1x1_p1:1x1:1_op1x1_f32_cfirst_wtorch",
    "convT_mb1_g1_ic96_oc48_i5x7_k2x2_s2x2_d1x1_p0:0x0:0_op0x0_f32_cfirst_wtf",
    "convT_mb1_g1_ic21_oc21_i6x6_k16x16_s8x8_d1x1_p4:4x4:4_op0x0_f32_clast_wtorch",
    "convT_mb1_g1_ic32_oc16_i40_k16_s8_d1_p4:4_op0_f32_clast_wtorch",
    "convT_mb1_g32_ic32_oc32_i9x9_k4x4_s2x2_d1x1_p1:1x1:1_op0x0_f32_clast_wtorch",
    "conv_mb1_g1_ic128_oc64_i11x11_k3x3_s1x1_d6x6_p6:6x6:6_f32_clast_wtorch",
    "conv_mb1_g1_ic64_oc32_i13x13_k3x3_s1x1_d18x18_p18:18x18:18_f32_cfirst_wtf",
    "conv_mb2_g1_ic48_oc48_i65_k3_s1_d8_p8:8_f32_cfirst_wtorch",
    "conv_mb1_g1_ic16_oc32_i300_k2_s1_d64_p64:0_f32_clast_wtorch",
    "conv_mb1_g1_ic24_oc40_i9x8x7_k3x3x3_s2x2x2_d1x1x1_p1:1x1:0x0:1_f32_clast_wtorch",
    "conv_mb1_g48_ic48_oc48_i17x17_k3x3_s1x1_d12x12_p12:12x12:12_f32_clast_wtorch",
    "conv_mb3_g1_ic30_oc17_i19x18_k4x4_s3x2_d1x1_p2:0x1:3_f32_cfirst_wtorch",
};

}  // namespace tdconv::testing
