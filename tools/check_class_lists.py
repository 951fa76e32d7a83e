#!/usr/bin/env python3
"""Checks the class lists under data/classes/ and the class sections of the presets.

Each list must have the data set's number of lines, no empty lines, no
leading or trailing white space, no duplicates (case-insensitive) and plain
UTF-8 text. A preset whose class section is named here must hold exactly the
same names in the same order as its list. Prints the first and last three
names of each list; exits 1 on any problem.

usage: python3 tools/check_class_lists.py [REPO_ROOT]
"""
import os
import sys

LISTS = [  # (file under data/classes, expected count, preset under data/presets or None)
    ("imagenet.txt", 1000, None),
    ("food101.txt", 101, "food.txt"),
    ("flowers102.txt", 102, "flowers.txt"),
    ("aircraft.txt", 100, "aircraft.txt"),
]


def read_lines(path, problems):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append(f"{path}: not UTF-8 ({e})")
        text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        problems.append(f"{path}: starts with a byte-order mark")
    if "\r" in text:
        problems.append(f"{path}: has carriage returns")
    if text and not text.endswith("\n"):
        problems.append(f"{path}: the last line has no newline")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def check_names(path, names, count, problems):
    if len(names) != count:
        problems.append(f"{path}: {len(names)} lines, expected {count}")
    seen = {}
    for i, name in enumerate(names, 1):
        if not name.strip():
            problems.append(f"{path}:{i}: empty line")
            continue
        if name != name.strip():
            problems.append(f"{path}:{i}: leading or trailing white space in {name!r}")
        if name.startswith("#"):
            problems.append(f"{path}:{i}: {name!r} starts with '#' (dc reads it as a comment)")
        if "\t" in name or "  " in name:
            problems.append(f"{path}:{i}: tab or double space in {name!r}")
        key = name.strip().lower()
        if key in seen:
            problems.append(f"{path}:{i}: {name!r} duplicates line {seen[key]}")
        else:
            seen[key] = i


def preset_classes(path, problems):
    lines = read_lines(path, problems)
    if "classes" not in lines:
        problems.append(f"{path}: no 'classes' line")
        return []
    return lines[lines.index("classes") + 1:]


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems = []
    for fname, count, preset in LISTS:
        path = os.path.join(root, "data", "classes", fname)
        if not os.path.isfile(path):
            problems.append(f"{path}: missing")
            continue
        names = read_lines(path, problems)
        check_names(path, names, count, problems)
        head = ", ".join(names[:3])
        tail = ", ".join(names[-3:])
        print(f"{fname}: {len(names)} classes: {head} ... {tail}")
        if preset:
            ppath = os.path.join(root, "data", "presets", preset)
            if not os.path.isfile(ppath):
                problems.append(f"{ppath}: missing")
                continue
            pnames = preset_classes(ppath, problems)
            if pnames != names:
                diff = next((i for i, (a, b) in enumerate(zip(pnames, names)) if a != b),
                            min(len(pnames), len(names)))
                problems.append(f"{ppath}: class section differs from {fname} "
                                f"({len(pnames)} vs {len(names)} names; first difference at line {diff + 1})")
            else:
                print(f"  presets/{preset}: class section matches ({len(pnames)} names)")
    for p in problems:
        print("FAIL", p)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
