// The BitNet-cxx library: load a model, make contexts, decode batches of many sequences,
// sample, tokenize, apply chat templates. Link bitnet::bitnet (CMake) and include this.
#pragma once

#include "bitnet/chat.h"
#include "bitnet/context.h"
#include "bitnet/evaluate.h"
#include "bitnet/generate.h"
#include "bitnet/log.h"
#include "bitnet/model.h"
#include "bitnet/result.h"
#include "bitnet/sampler.h"
#include "bitnet/scheduler.h"
