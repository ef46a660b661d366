# gc_pauses: reads a member's log on stdin and prints one line per collection, "Scavenge MS" or
# "Mark-Compact MS" (the pause in ms), from either of V8's traces: --trace-gc lines
# ("Mark-Compact 410.1 (420.3) -> 380.2 (400.1) MB, 12.3 / 0.0 ms") or --trace-gc-nvp's, which
# replace them ("pause=12.3 mutator=4.0 gc=mc", gc=s for a scavenge). Sourced by bench/growth.sh
# and bench/tail-ab.sh, which sum the lines their own way.
gc_pauses() {
  grep -oE '(Scavenge|Mark-Compact)[^,]*, [0-9.]+|pause=[0-9.]+ mutator=[0-9.]+ gc=(mc|s)' |
    sed -E 's/^pause=([0-9.]+) mutator=[0-9.]+ gc=(mc|s)$/\2 \1/; s/^mc /Mark-Compact /; s/^s /Scavenge /; s/^(Scavenge|Mark-Compact)[^,]*, /\1 /'
}
