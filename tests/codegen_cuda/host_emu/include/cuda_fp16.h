// Host emulation stand-in for the toolkit's cuda_fp16.h: the generated kernels include it, and
// cuda_host_emu.h (force-included) already provides __half and its conversions.
#pragma once
