# bash completion for asya: commands, their subcommands and options, files for positionals and
# option values. Installed as share/bash-completion/completions/asya (docs/install.md); or load
# it by hand: source packaging/completion/asya.bash
#
# Words come from `asya [COMMAND...] --help` of the asya being completed, so they always match
# that binary (commands added later complete with no change here).

# One line per word of `asya PATH... --help`: "sub NAME" (subcommand), "flag --x" (option without
# value), "value --x" (option taking a value), "pos" (the command takes positionals).
_asya_help_words() {
  "$@" --help 2>/dev/null | awk '
    /^Subcommands:/ { section = "sub"; next }
    /^Options:/ { section = "opt"; next }
    /^Positionals:/ { section = ""; print "pos"; next }
    /^[^ ]/ { section = "" }
    section == "sub" && /^  [a-z]/ { print "sub " $1 }
    section == "opt" && /^  -/ {
      kind = ($2 ~ /^[A-Z]+$/) ? "value" : "flag"
      n = split($1, names, ",")
      for (i = 1; i <= n; i++) print kind " " names[i]
    }'
}

_asya() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  local -a command=("${COMP_WORDS[0]}")
  local help word i
  help=$(_asya_help_words "${command[@]}")
  # Walk the words before the cursor: subcommands deepen the help, option values are skipped.
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == -* ]]; then
      if grep -qxF "value $word" <<<"$help"; then ((i++)); fi
    elif grep -qxF "sub $word" <<<"$help"; then
      command+=("$word")
      help=$(_asya_help_words "${command[@]}")
    fi
  done
  COMPREPLY=()
  if [[ $prev == -* ]] && grep -qxF "value $prev" <<<"$help"; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  elif [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(awk '$1 == "flag" || $1 == "value" { print $2 }' \
                                             <<<"$help")" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "$(awk '$1 == "sub" { print $2 }' <<<"$help")" -- "$cur")
    if grep -qx "pos" <<<"$help"; then
      local -a files
      mapfile -t files < <(compgen -f -- "$cur")
      COMPREPLY+=("${files[@]}")
    fi
  fi
}

complete -o filenames -F _asya asya
