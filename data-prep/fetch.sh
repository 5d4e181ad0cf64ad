#!/usr/bin/env bash
# data-prep/fetch.sh: fills a shared folder with the real preference data and
# models btrm uses (data-prep/sources.tsv names each file with its sha256,
# license and upstream address), from the network or from a local mirror, and
# verifies every checksum. A file already there with the right checksum is
# kept; a download or copy goes to a temporary name and is renamed only once
# its checksum is right, so a failed or interrupted run never leaves a bad
# file under a final name.
set -euo pipefail

usage() {
    cat <<EOF
usage: data-prep/fetch.sh [-o DIR] [--from MIRROR] [--data] [--models] [--only NAME]...
                          [--check] [--list] [--rewrite FROM=TO]...

Fetches the seven preference sets (data/) and the models and tokenizer files
(models/) that btrm's tests, demo and experiments use, as listed in
data-prep/sources.tsv, and checks each file's sha256.

  -o, --out DIR     the shared folder to fill (default: \$BTRM_SHARED, else
                    ../shared next to the source tree); files go to DIR/data/...
                    and DIR/models/..., where the tests look for them
  --from MIRROR     copy from a local folder laid out the same way
                    (MIRROR/data/..., MIRROR/models/...) instead of downloading
  --data, --models  only the data sets, only the models (default: both)
  --only NAME       only the files of one set or model folder (hh-rlhf, llmbar,
                    xstest, pandalm, humanevalpack, gsm8k, truthfulqa,
                    stories260K, ggml-vocab, gpt2-tokenizer); repeatable
  --check           download nothing: verify the files present, list the
                    missing or damaged ones (exit 1 if any)
  --list            print the files with their license and source, and exit
  --rewrite FROM=TO download URLs starting with FROM from TO instead (a site
                    mirror or proxy); repeatable
  -h, --help        this help

Downloads use curl (HTTPS, 3 retries). Exit codes: 0 every file present and
verified, 1 a file could not be fetched or has the wrong checksum (named, with
the expected and the actual sha256), 2 usage error.

Licenses: the data keep their own (MIT, Apache-2.0, CC-BY-4.0; each set's
LICENSE file is fetched with it); see data-prep/README.md and
../shared/data/README.md, ../shared/models/README.md for the provenance.
EOF
}

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
manifest=$top/data-prep/sources.tsv
out="" from="" want_data=1 want_models=1 check_only=0 list=0
only=() rewrites=()
die() { echo "fetch.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -o|--out) [ $# -ge 2 ] || die "$1 needs a value"; out=$2; shift 2 ;;
        --from) [ $# -ge 2 ] || die "--from needs a value"; from=$2; shift 2 ;;
        --data) want_models=0; want_data=1; shift ;;
        --models) want_data=0; want_models=1; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs a value"; only+=("$2"); shift 2 ;;
        --check) check_only=1; shift ;;
        --list) list=1; shift ;;
        --rewrite) [ $# -ge 2 ] && [[ $2 == *=* ]] || die "--rewrite needs FROM=TO"; rewrites+=("$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if [ -z "$out" ]; then
    if [ -n "${BTRM_SHARED:-}" ]; then out=$BTRM_SHARED; else out=$(cd "$top/.." && pwd)/shared; fi
fi
[ -z "$from" ] || [ -d "$from" ] || die "--from: no folder '$from'"
[ -r "$manifest" ] || die "cannot read $manifest"

# the selected manifest rows: path sha license url
rows=()
known=" "
while IFS=$'\t' read -r path sha license url; do
    [ -n "$path" ] && [ "${path:0:1}" != "#" ] || continue
    top_dir=${path%%/*} rest=${path#*/} name=${rest%%/*}
    known+="$name "
    [ "$top_dir" = data ] && [ "$want_data" = 0 ] && continue
    [ "$top_dir" = models ] && [ "$want_models" = 0 ] && continue
    if [ ${#only[@]} -gt 0 ]; then
        keep=0
        for o in "${only[@]}"; do [ "$o" = "$name" ] && keep=1; done
        [ "$keep" = 1 ] || continue
    fi
    rows+=("$path"$'\t'"$sha"$'\t'"$license"$'\t'"$url")
done < "$manifest"
for o in "${only[@]+"${only[@]}"}"; do
    [[ $known == *" $o "* ]] || die "--only $o: not a set or model folder of data-prep/sources.tsv"
done
[ ${#rows[@]} -gt 0 ] || die "nothing selected"

if [ "$list" = 1 ]; then
    printf '%s\n' "${rows[@]}"
    exit 0
fi

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
rewrite() {
    local url=$1 r
    for r in "${rewrites[@]+"${rewrites[@]}"}"; do
        [[ $url == "${r%%=*}"* ]] && { echo "${r#*=}${url#"${r%%=*}"}"; return; }
    done
    echo "$url"
}
cache=$(mktemp -d "${TMPDIR:-/tmp}/btrm-fetch.XXXXXX")
trap 'rm -rf "$cache"' EXIT
download() { # URL OUTFILE
    curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1"
}
# where a row comes from, for messages
source_of() { # path url
    if [ -n "$from" ]; then echo "$from/$1"; else echo "$(rewrite "${2%%#*}")${2#"${2%%#*}"}"; fi
}
# fetch_one PATH URL TMP: the file into TMP; on failure prints why, returns 1
fetch_one() {
    local path=$1 url=$2 tmp=$3
    if [ -n "$from" ]; then
        [ -f "$from/$path" ] || { echo "not in the mirror ($from/$path)"; return 1; }
        cp "$from/$path" "$tmp"
        return
    fi
    if [ "$url" = - ]; then
        echo "no upstream download (made for btrm's tests, see ../shared/models/README.md): copy it with --from"
        return 1
    fi
    local real
    real=$(rewrite "${url%%#*}")
    if [[ $url == *#* ]]; then
        # a member of an archive, downloaded once per run
        local archive
        archive="$cache/$(printf '%s' "$real" | sha256sum | cut -c1-16).tgz"
        [ -s "$archive" ] || download "$real" "$archive" || { echo "download of $real failed"; return 1; }
        tar -xzOf "$archive" "${url#*#}" > "$tmp" 2>/dev/null || { echo "no ${url#*#} in $real"; return 1; }
        return
    fi
    download "$real" "$tmp" || { echo "download of $real failed"; return 1; }
}

n_ok=0 n_new=0 n_bad=0
for row in "${rows[@]}"; do
    IFS=$'\t' read -r path sha license url <<<"$row"
    dest=$out/$path
    if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
        n_ok=$((n_ok + 1))
        continue
    fi
    if [ "$check_only" = 1 ]; then
        if [ -f "$dest" ]; then echo "DAMAGED $path: sha256 $(sha_of "$dest"), expected $sha" >&2
        else echo "MISSING $path" >&2; fi
        n_bad=$((n_bad + 1))
        continue
    fi
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "$(dirname "$dest")/.fetch.XXXXXX")
    if ! why=$(fetch_one "$path" "$url" "$tmp"); then
        rm -f "$tmp"
        echo "FAILED $path: $why" >&2
        n_bad=$((n_bad + 1))
        continue
    fi
    got=$(sha_of "$tmp")
    if [ "$got" != "$sha" ]; then
        rm -f "$tmp"
        echo "FAILED $path: sha256 $got, expected $sha (from $(source_of "$path" "$url"))" >&2
        n_bad=$((n_bad + 1))
        continue
    fi
    chmod 0644 "$tmp"
    mv -f "$tmp" "$dest"
    echo "fetched $path ($license)"
    n_new=$((n_new + 1))
done
echo "fetch.sh: $out: $n_ok present and verified, $n_new fetched, $n_bad failed (of ${#rows[@]})"
[ "$n_bad" = 0 ]
