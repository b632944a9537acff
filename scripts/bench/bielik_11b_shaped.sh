#!/usr/bin/env bash
# The seed's job at full size on this machine, on an 11B-shaped checkpoint (Bielik-11B-v3.0's exact
# shapes, random bf16 weights, 22.3 GB): the steps of recipes/bielik-11b-to-7b.yaml that memory
# allows, each measured (peak RSS from /usr/bin/time -v, seconds, tokens/s), then the projected wall
# time of distillation budgets on this machine.
#
#   bash scripts/bench/bielik_11b_shaped.sh [OUT_DIR]        (default runs/bielik_11b_shaped)
#
# Steps (each skipped when OUT_DIR/steps/<name>.done exists, so running the script again resumes
# after the last finished step; the checkpoint writer keeps the shards already complete):
#   checkpoint     scripts/bench/make_shaped_checkpoint.ts --shape bielik-11b (checks free disk first)
#   data           kompresor data prepare on Polish text (the demo corpus if built, else the eval suite's)
#   score          kompresor score --stream --max-memory $MAX_MEMORY, $SAMPLES x $SEQ_LEN tokens
#   prune          kompresor prune --target num_hidden_layers=40,intermediate_size=11264 --depth importance
#   eval           kompresor eval perplexity on ~$EVAL_TOKENS tokens, layer-streamed (needs eval --stream:
#                  the stream-eval branch; skipped with a note on a build without it)
#   teacher_cache  kompresor teacher-cache for ~$CACHE_TOKENS tokens (needs the teacher-cache command)
# Environment: MAX_MEMORY (20GiB), SAMPLES (8), SEQ_LEN (256), EVAL_TOKENS (2048), CACHE_TOKENS (4096),
# CLEAN=1 deletes the checkpoints at the end (they are kept by default, so a later run resumes).
# Results: OUT_DIR/summary.json and the table printed at the end (BENCHMARKS.md "Bielik-11B shape").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/runs/bielik_11b_shaped}")"
MAX_MEMORY="${MAX_MEMORY:-20GiB}"
SAMPLES="${SAMPLES:-8}"
SEQ_LEN="${SEQ_LEN:-256}"
EVAL_TOKENS="${EVAL_TOKENS:-2048}"
CACHE_TOKENS="${CACHE_TOKENS:-4096}"
KOMPRESOR=(node "$ROOT/bin/kompresor.mjs")
MODEL="$OUT/bielik-11b"
PRUNED="$OUT/pruned"
STEPS="$OUT/steps"
mkdir -p "$STEPS"
[ -x /usr/bin/time ] || { echo "bielik_11b_shaped: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

CORPUS="$ROOT/runs/polish/corpus/train.jsonl"
[ -f "$CORPUS" ] || CORPUS="$ROOT/evals/polish/pl_perplexity/test.jsonl"

# run_step NAME TOKENS CMD...: runs CMD under /usr/bin/time -v unless NAME is done; writes
# steps/NAME.{json,log,done}; .done holds {"step", "peak_rss_bytes", "seconds", "tokens", "exit"}
run_step() {
  local name="$1" tokens="$2"; shift 2
  if [ -f "$STEPS/$name.done" ]; then echo "== $name: done before, skipped ($(cat "$STEPS/$name.done"))" >&2; return 0; fi
  echo "== $name: $* (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  /usr/bin/time -v "$@" > "$STEPS/$name.json" 2> "$STEPS/$name.log" || rc=$?
  t1=$(date +%s.%N)
  local rss_kb
  rss_kb=$(grep -oP 'Maximum resident set size \(kbytes\): \K[0-9]+' "$STEPS/$name.log" || echo 0)
  if [ "$rc" -ne 0 ]; then
    echo "== $name failed (exit $rc); log: $STEPS/$name.log" >&2
    grep -m1 '^kompresor:' "$STEPS/$name.log" >&2 || tail -5 "$STEPS/$name.log" >&2
    return "$rc"
  fi
  printf '{"step":"%s","peak_rss_bytes":%d,"seconds":%.1f,"tokens":%d,"load":%s,"finished":"%s"}\n' "$name" "$((rss_kb * 1024))" \
    "$(echo "$t1 - $t0" | bc)" "$tokens" "$(cut -d' ' -f1 /proc/loadavg)" "$(date -u +%FT%TZ)" > "$STEPS/$name.done"
  echo "== $name: $(cat "$STEPS/$name.done")" >&2
}

# a note instead of a measurement, for a step this build cannot run
skip_step() {
  [ -f "$STEPS/$1.done" ] && return 0
  printf '{"step":"%s","skipped":"%s"}\n' "$1" "$2" > "$STEPS/$1.skipped"
  echo "== $1: not run: $2" >&2
}

has_flag() { "${KOMPRESOR[@]}" "$1" --help 2>/dev/null | grep -q -- "$2"; }
has_command() { "${KOMPRESOR[@]}" "$1" --help 2>/dev/null | head -1 | grep -q "^Usage: kompresor $1 "; }

# 1. the checkpoint (resumable shard by shard; refuses when the disk is short)
if [ ! -f "$STEPS/checkpoint.done" ]; then
  node --import tsx "$ROOT/scripts/bench/make_shaped_checkpoint.ts" --shape bielik-11b --out "$MODEL" > "$STEPS/checkpoint.txt"
  cat "$STEPS/checkpoint.txt" >&2
  echo '{"step":"checkpoint"}' > "$STEPS/checkpoint.done"
fi

# 2. token shards for the teacher cache (tiny; not measured)
[ -f "$OUT/data/manifest.json" ] || "${KOMPRESOR[@]}" data prepare --input "$CORPUS" --tokenizer "$MODEL" --out "$OUT/data" --val-fraction 0.05 --json > /dev/null

# 3. score, layer-streamed
run_step score $((SAMPLES * SEQ_LEN)) "${KOMPRESOR[@]}" score "$MODEL" --data "$CORPUS" --out "$OUT/scores.json" \
  --samples "$SAMPLES" --seq-len "$SEQ_LEN" --stream --max-memory "$MAX_MEMORY" --no-report --json

# 4. prune to the seed's shape (one tensor at a time)
[ -f "$STEPS/prune.done" ] || rm -rf "$PRUNED"
run_step prune 0 "${KOMPRESOR[@]}" prune "$MODEL" --scores "$OUT/scores.json" --out "$PRUNED" \
  --target num_hidden_layers=40,intermediate_size=11264 --depth importance --no-report
# (not `kompresor inspect`: on this build it loads the model, 12+ GB for the pruned 7.48B; the prune
# report holds the exact counts)

# 5. eval perplexity, layer-streamed (stream-eval branch)
if has_flag eval --stream; then
  TASK="$OUT/ppl_task"
  mkdir -p "$TASK"
  # documents of the eval suite's held-out text up to ~EVAL_TOKENS tokens (4 characters per token is the
  # Polish BPE's rate on this text; the exact count is in the results)
  node -e '
    const fs = require("fs"); const [src, dst, chars] = process.argv.slice(1);
    let n = 0; const out = [];
    for (const l of fs.readFileSync(src, "utf8").trim().split("\n")) { if (n >= +chars) break; out.push(l); n += JSON.parse(l).text.length; }
    fs.writeFileSync(dst, out.join("\n") + "\n");' "$ROOT/evals/polish/pl_perplexity/test.jsonl" "$TASK/test.jsonl" $((EVAL_TOKENS * 4))
  sed 's/^task: pl_perplexity/task: shaped_ppl/' "$ROOT/evals/polish/pl_perplexity/pl_perplexity.yaml" > "$TASK/shaped_ppl.yaml"
  run_step eval "$EVAL_TOKENS" "${KOMPRESOR[@]}" eval "$MODEL" --tasks "$TASK" --out "$OUT/eval.json" --stream --max-memory "$MAX_MEMORY" \
    --bootstrap-iters 0 --json
else
  skip_step eval "this build has no eval --stream (the stream-eval branch); the bf16 teacher alone is 22.3 GB"
fi

# 6. the teacher top-k cache, layer-streamed (stream-eval branch)
if has_command teacher-cache; then
  run_step teacher_cache "$CACHE_TOKENS" "${KOMPRESOR[@]}" teacher-cache --teacher "$MODEL" --data "$OUT/data" --out "$OUT/teacher_cache" \
    --tokens "$CACHE_TOKENS" --micro-batch 1 --seq-len 512 --eval-batches 1 --top-k 64 --max-memory "$MAX_MEMORY" --json
else
  skip_step teacher_cache "this build has no kompresor teacher-cache (the stream-eval branch)"
fi

# 7. the summary: every step's figures, and the projected wall time of distillation budgets from the
# measured streamed-forward rate (teacher forward 2 N_teacher flop/token, once, into the cache; student
# step 6 N_student flop/token), at the effective flop rate the streamed forward reached
node -e '
  const fs = require("fs"), path = require("path"); const [steps, outFile] = process.argv.slice(1);
  const rows = fs.readdirSync(steps).filter((f) => /\.(done|skipped)$/.test(f)).map((f) => JSON.parse(fs.readFileSync(path.join(steps, f), "utf8")));
  const by = Object.fromEntries(rows.map((r) => [r.step, r]));
  for (const r of rows) if (r.seconds && r.tokens) r.tokens_per_s = r.tokens / r.seconds;
  let params = null; try { params = JSON.parse(fs.readFileSync(path.join(steps, "../pruned/prune_report.json"), "utf8")).params.after.total; } catch {}
  const teacher = 11168796672, student = params ?? 7477727232; // totals with the untied lm_head
  const fwd = by.teacher_cache?.tokens_per_s ?? by.eval?.tokens_per_s ?? by.score?.tokens_per_s;
  const projection = fwd ? (() => {
    const flops = 2 * teacher * fwd; // effective flop/s of the streamed teacher forward
    const perToken = 2 * teacher + 6 * student;
    return { teacher_forward_tokens_per_s: fwd, effective_gflops: flops / 1e9,
      budgets: Object.fromEntries([1e9, 94e9].map((b) => [b, { days: (b * perToken / flops) / 86400 }])) };
  })() : null;
  const summary = { model: "bielik-11b shape", student_params: params, steps: rows, projection };
  fs.writeFileSync(outFile, JSON.stringify(summary, null, 2) + "\n");
  for (const r of rows) console.log(r.skipped ? `${r.step}: not run (${r.skipped})` : r.peak_rss_bytes !== undefined ?
    `${r.step}: peak ${(r.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB, ${r.seconds} s${r.tokens_per_s ? `, ${r.tokens_per_s.toFixed(2)} tokens/s` : ""} (load ${r.load})` : `${r.step}: done`);
  if (projection) console.log(`projection: ${projection.effective_gflops.toFixed(1)} GFLOP/s effective; distilling 1B tokens ~${projection.budgets[1e9].days.toFixed(0)} days, 94B ~${projection.budgets[94e9].days.toFixed(0)} days on this machine`);
' "$STEPS" "$OUT/summary.json"

if [ "${CLEAN:-0}" = 1 ]; then rm -rf "$MODEL" "$PRUNED"; echo "removed the checkpoints" >&2; fi
