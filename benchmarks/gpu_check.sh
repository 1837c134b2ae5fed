#!/usr/bin/env bash
# The GPU check, one script for a machine with a CUDA GPU and no internet (about 6 minutes on
# one H200): the demo config in bf16 (autocast, and bfloat16 weights), the training-speed
# benchmark against the HF Trainer (the ratio, and useful FLOP/s against the GPU's measured
# bf16 matmul rate), the inference benchmark in bfloat16, the tests marked `gpu`, and a GPU
# section of BENCHMARKS.md. Every figure lands in OUT, in at most 7 files:
#   demo_autocast.json demo_weights.json training_speed.json inference.json gpu_tests.txt
#   gpu_check.log BENCHMARKS.md (this repository's, with the GPU section written)
#
# The GPU machine cannot fetch the demo's model, data or missing packages, so they travel in a
# bundle prepared here, in the repository (ignored by git; about 53 MiB of the 64 MiB that
# travel with the working tree):
#   python benchmarks/gpu_check.py pack gpu-bundle --wheels
# then, on the GPU machine (the device tool: carry gpu-bundle, command below, timeout 600):
#   bash benchmarks/gpu_check.sh gpu-bundle "$OUT"
# and back here: cp OUT/BENCHMARKS.md BENCHMARKS.md (the GPU section is its only change).
#
# Without a GPU, --dry-run runs every step tiny on the CPU from the same bundle (no wheels
# needed), up to the point where a GPU is needed:
#   bash benchmarks/gpu_check.sh --dry-run gpu-bundle /tmp/gpu-check
set -uo pipefail

dry_run=0
if [[ ${1:-} == --dry-run ]]; then
  dry_run=1
  shift
fi
if (($# != 2)); then
  echo "usage: $0 [--dry-run] BUNDLE OUT" >&2
  exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
bundle=$(realpath "$1")
out=$(realpath -m "$2")
python=${PYTHON:-python3}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
exec > >(tee "$out/gpu_check.log") 2>&1
cd "$repo"

# Each step's time limit is its share of 8 minutes on the GPU; the CPU gets 5 times as long.
if ((dry_run)); then
  device=cpu demo_steps=(--max-steps 4) rows=8 batch=8 texts=16 inference_batch=8 slower=5
  data_rows=(--rows 40) # the first 40 rows of each split: the steps in minutes, not hours
else
  device=cuda demo_steps=() rows=2000 batch=32 texts=4096 inference_batch=64 slower=1
  data_rows=()
fi

# The packages the image lacks, from the bundle's wheels, ahead of the image's own.
if ((!dry_run)) && compgen -G "$bundle/wheels/*.whl" >/dev/null; then
  $python -m pip install -q --no-index --no-deps --no-compile --target "$work/site" \
    "$bundle"/wheels/*.whl || exit 1
  export PYTHONPATH=$work/site
fi
# Nothing may be fetched (the GPU machine cannot): a step that tries fails here too.
export PIP_NO_INDEX=1
export PYTHONPATH=$repo/src${PYTHONPATH:+:$PYTHONPATH}
export MTLM_CACHE=$work/cache HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
$python benchmarks/gpu_check.py unpack "$bundle" "$MTLM_CACHE" "${data_rows[@]}" || exit 1
$python -c "import torch, transformers, mtlm.training.trainer as t
print('torch', torch.__version__, 'transformers', transformers.__version__,
      'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())" || exit 1
if ((!dry_run)) && ! $python -c "import torch; assert torch.cuda.is_available()"; then
  echo "no CUDA GPU here: run with --dry-run" >&2
  exit 1
fi

failed=()
step() { # step NAME SECONDS COMMAND...: run it with a time limit; a failure is noted, and the
  # next steps run all the same
  local name=$1 limit=$(($2 * slower))
  shift 2
  echo "=== $name ($(date +%T), at most ${limit} s)"
  if ! timeout "$limit" "$@"; then
    failed+=("$name")
    return 1
  fi
}

for variant in autocast weights; do
  config=$work/demo-$variant.yaml
  $python benchmarks/gpu_check.py demo-config "$variant" "$config" "$work/demo-$variant" \
    "${demo_steps[@]}"
  step "demo ($variant)" 80 $python -m mtlm.cli train "$config" &&
    $python benchmarks/gpu_check.py demo-figures "$work/demo-$variant" "$out/demo_$variant.json"
done
step "training speed" 150 $python benchmarks/training_speed.py --device "$device" \
  --precision bf16 --rows "$rows" --batch-size "$batch" --repeats 1 --no-tasknet \
  --json "$out/training_speed.json"
step "inference" 80 $python benchmarks/inference.py --device "$device" --dtype bfloat16 \
  --texts "$texts" --batch-size "$inference_batch" --repeats 2 \
  --json "$out/inference.json"
mapfile -t gpu_tests < <(grep -rl --include='test_*.py' "mark.gpu" tests)
step "tests marked gpu" 45 bash -c "$python -m pytest -q -m gpu -p no:cacheprovider \
  ${gpu_tests[*]} > '$out/gpu_tests.txt' 2>&1"
cat "$out/gpu_tests.txt"
$python benchmarks/gpu_check.py report "$out" \
  --command "bash benchmarks/gpu_check.sh$( ((dry_run)) && echo ' --dry-run') BUNDLE OUT"

if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all steps passed; figures in $out"
