"""Replace one named section of docs/BENCHMARKS.md (between <!-- NAME:begin --> and
<!-- NAME:end -->) with the Markdown read from stdin, creating the file or appending the section
when missing. Each bench script owns one section.

    python3 bench/section.py docs/BENCHMARKS.md NAME < section.md

BENCH_DOC, when set, names the file to write instead (bench/all.sh collects a run's sections in
a copy and replaces docs/BENCHMARKS.md only once every script has succeeded).
"""
import os
import sys

HEADER = (
    "# Benchmarks\n\n"
    "Each section below is written by the script it names, on the machine it names; rerun the\n"
    "script to refresh it. Numbers from different sections were taken at different times.\n"
)


def main() -> None:
    path, name = os.environ.get("BENCH_DOC") or sys.argv[1], sys.argv[2]
    body = sys.stdin.read().strip("\n")
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(path).read() if os.path.exists(path) else HEADER
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
