#!/bin/bash
# btrm sweep without Slurm: grid and zip expansion (order, values, base
# replacement, settings), the files it writes, idempotence, finished runs
# left out of the sbatch line, a changed sweep refused, a bad value failing
# before anything is written.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 34
cd "$WORK"
mkdir -p sw/cfg
cat > sw/cfg/a.yaml <<'YAML'
run: {name: a}
data: {train: a-train.h5, eval: [a-test.h5]}
train: {global_batch: 64, steps: 20}
YAML
cat > sw/cfg/b.yaml <<'YAML'
base: a.yaml
data:
  train: b-train.h5
YAML
cat > sw/cfg/exp.yaml <<'YAML'
optim: {lr: 0.01, schedule: cosine}
model:
  head: mlp
  hidden: [8]
YAML
cat > sw/s.sweep.yaml <<'YAML'
# comments do not matter
base: cfg/a.yaml
settings: cfg/exp.yaml
grid:
  base: [cfg/a.yaml, cfg/b.yaml]
  loss.type: [bt, normbt]
  model.hidden: [[4], [8, 4]]
zip:
  - {optim.lr: [1e-3, 3e-4], run.seed: [1, 2]}
YAML

# 1. expansion: the last key varies fastest, a zip group is one axis after the grid
run_cmd dry.out "$BTRM" sweep sw/s.sweep.yaml -o out --dry-run
expect_rc 0 "--dry-run resolves and checks every run"
cat > want.tsv <<'TSV'
index	name	overrides
0	s-0000	base=cfg/a.yaml;loss.type=bt;model.hidden=[4];optim.lr=1e-3;run.seed=1
1	s-0001	base=cfg/a.yaml;loss.type=bt;model.hidden=[4];optim.lr=3e-4;run.seed=2
2	s-0002	base=cfg/a.yaml;loss.type=bt;model.hidden=[8, 4];optim.lr=1e-3;run.seed=1
3	s-0003	base=cfg/a.yaml;loss.type=bt;model.hidden=[8, 4];optim.lr=3e-4;run.seed=2
4	s-0004	base=cfg/a.yaml;loss.type=normbt;model.hidden=[4];optim.lr=1e-3;run.seed=1
5	s-0005	base=cfg/a.yaml;loss.type=normbt;model.hidden=[4];optim.lr=3e-4;run.seed=2
6	s-0006	base=cfg/a.yaml;loss.type=normbt;model.hidden=[8, 4];optim.lr=1e-3;run.seed=1
7	s-0007	base=cfg/a.yaml;loss.type=normbt;model.hidden=[8, 4];optim.lr=3e-4;run.seed=2
8	s-0008	base=cfg/b.yaml;loss.type=bt;model.hidden=[4];optim.lr=1e-3;run.seed=1
9	s-0009	base=cfg/b.yaml;loss.type=bt;model.hidden=[4];optim.lr=3e-4;run.seed=2
10	s-0010	base=cfg/b.yaml;loss.type=bt;model.hidden=[8, 4];optim.lr=1e-3;run.seed=1
11	s-0011	base=cfg/b.yaml;loss.type=bt;model.hidden=[8, 4];optim.lr=3e-4;run.seed=2
12	s-0012	base=cfg/b.yaml;loss.type=normbt;model.hidden=[4];optim.lr=1e-3;run.seed=1
13	s-0013	base=cfg/b.yaml;loss.type=normbt;model.hidden=[4];optim.lr=3e-4;run.seed=2
14	s-0014	base=cfg/b.yaml;loss.type=normbt;model.hidden=[8, 4];optim.lr=1e-3;run.seed=1
15	s-0015	base=cfg/b.yaml;loss.type=normbt;model.hidden=[8, 4];optim.lr=3e-4;run.seed=2
TSV
grep -v '^btrm:' dry.out > dry.tsv
pass_if "16 runs in the documented order (grid keys, then zip groups; the last varies fastest)" cmp -s dry.tsv want.tsv
pass_if "--dry-run writes nothing" test ! -e out

# 2. the sweep directory
run_cmd sweep.out "$BTRM" sweep sw/s.sweep.yaml -o out/ --max-running 3
expect_rc 0 "btrm sweep writes the sweep"
pass_if "runs.tsv is the run table" cmp -s out/runs.tsv want.tsv
pass_if "sweep.yaml is a copy of the sweep file" cmp -s out/sweep.yaml sw/s.sweep.yaml
pass_if "sweep.json, logs/ and 16 run configs" test -s out/sweep.json -a -d out/logs \
    -a -s out/runs/0000/config.yaml -a -s out/runs/0015/config.yaml -a ! -e out/runs/0016
expect_grep '^sbatch --array=0-15%3 --job-name=s --output=out/logs/%A_%a\.out [^ ]*slurm/sweep\.sbatch out$' \
    sweep.out "the sbatch line: every run, %K from --max-running, logs in DIR/logs"
run_cmd cfg13.out "$BTRM" config out/runs/0013/config.yaml
pass_if "a run's config.yaml is fully resolved (btrm config prints it back unchanged)" \
    cmp -s cfg13.out out/runs/0013/config.yaml
expect_grep '^  name: "s-0013"$' out/runs/0013/config.yaml "run.name is <sweep name>-<index>"
expect_grep '^  out_dir: "out/runs/0013"$' out/runs/0013/config.yaml "run.out_dir is DIR/runs/<index>"
expect_grep '^  train: "b-train.h5"$' out/runs/0013/config.yaml "a grid base replaces the sweep's base (b.yaml and its own base)"
expect_grep '^  eval: \["a-test.h5"\]$' out/runs/0013/config.yaml "... whose base chain is followed"
expect_grep '^  schedule: cosine$' out/runs/0013/config.yaml "settings are merged on top of the base"
expect_grep '^  lr: 0.0003$' out/runs/0013/config.yaml "grid and zip values win over settings"
expect_grep '^  hidden: \[4\]$' out/runs/0013/config.yaml "a flow list value sets a list key"
expect_grep '^  type: normbt$' out/runs/0013/config.yaml "loss.type from the grid"
expect_grep '^  seed: 2$' out/runs/0013/config.yaml "run.seed from the zip group"

# 3. idempotence: the same sweep again rewrites nothing
snapshot() { find out -type f -printf '%P %i %s %T@\n' | sort; }
snapshot > before.txt
run_cmd again.out "$BTRM" sweep sw/s.sweep.yaml -o out --max-running 3
expect_rc 0 "the same sweep again succeeds"
snapshot > after.txt
pass_if "... and rewrites nothing (same inodes, sizes, times)" cmp -s before.txt after.txt
expect_grep 'already holds this sweep' again.out "... and says so"

# 4. finished runs are left out of the sbatch line; a missing config is restored
printf '{\n  "status": "ok"\n}\n' > out/runs/0001/summary.json
printf '{\n  "status": "failed"\n}\n' > out/runs/0002/summary.json
printf '{"status": "ok"}\n' > out/runs/0015/summary.json
cp out/runs/0005/config.yaml saved-0005.yaml
rm out/runs/0005/config.yaml
run_cmd fin.out "$BTRM" sweep sw/s.sweep.yaml -o out
expect_grep '^sbatch --array=0,2-14%8 ' fin.out "finished runs (summary.json status ok) are not submitted again"
pass_if "a deleted run config is restored" cmp -s out/runs/0005/config.yaml saved-0005.yaml

# 5. a changed sweep is refused, saying what changed, and nothing is touched
snapshot > before.txt
sed -i 's/run.seed: \[1, 2\]/run.seed: [1, 3]/' sw/s.sweep.yaml
run_cmd changed.out "$BTRM" sweep sw/s.sweep.yaml -o out
expect_rc 2 "a changed grid is refused"
expect_grep 'run 0001: run\.seed=2 -> run\.seed=3' changed.out "... naming the run and the override that changed"
sed -i 's/run.seed: \[1, 3\]/run.seed: [1, 2]/' sw/s.sweep.yaml
sed -i 's/schedule: cosine/schedule: linear/' sw/cfg/exp.yaml
run_cmd changed2.out "$BTRM" sweep sw/s.sweep.yaml -o out
expect_rc 2 "a changed settings file is refused"
expect_grep 'run 0000 \(base=cfg/a\.yaml;[^)]*\): optim\.schedule: cosine -> linear' changed2.out \
    "... naming the run and the key whose value changed"
sed -i 's/schedule: linear/schedule: cosine/' sw/cfg/exp.yaml
snapshot > after.txt
pass_if "a refused sweep leaves the directory as it was" cmp -s before.txt after.txt

# 6. a bad value fails the whole sweep before anything is written
cat > sw/bad.yaml <<'YAML'
base: cfg/a.yaml
grid:
  loss.type: [bt, normbt]
  optim.lr: [1e-3, abc]
YAML
run_cmd bad.out "$BTRM" sweep sw/bad.yaml -o bad
expect_rc 2 "a bad grid value fails the sweep"
expect_grep 'sw/bad\.yaml:4:20: run 0001 \(loss\.type=bt;optim\.lr=abc\): optim\.lr=abc: expected a number' \
    bad.out "... naming where, the run index and the override"
pass_if "... before anything is written" test ! -e bad

# 7. other refusals
printf 'base: cfg/a.yaml\nzip:\n  - {loss.type: [bt, normbt], run.seed: [1]}\n' > sw/zip.yaml
run_cmd zip.out "$BTRM" sweep sw/zip.yaml -o bad
expect_grep 'zip: run\.seed has 1 values but loss\.type has 2' zip.out "zip lists of different lengths are refused"
printf 'base: cfg/a.yaml\ngrid: {run.out_dir: [x]}\n' > sw/dir.yaml
run_cmd dir.out "$BTRM" sweep sw/dir.yaml -o bad
expect_grep "'run\.out_dir' is set by the sweep" dir.out "run.out_dir cannot be varied"
mkdir foreign && touch foreign/notes.txt
run_cmd foreign.out "$BTRM" sweep sw/s.sweep.yaml -o foreign
expect_grep "foreign exists and is not a sweep directory \(it holds 'notes.txt'\)" foreign.out \
    "a directory that is not a sweep's is refused"
done_testing
