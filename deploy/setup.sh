#!/usr/bin/env bash
# Prepares what `docker compose up` needs for the Kuvert stack (see deploy/README.md).
#
#   deploy/setup.sh init        create .env from deploy/env.example, every CHANGE_ME replaced by a
#                               fresh random secret (refuses to overwrite an existing .env)
#   deploy/setup.sh check       check .env: every variable the stack needs is set, no CHANGE_ME left,
#                               names, addresses and database passwords well-formed
#   deploy/setup.sh render [--force] [--env-file FILE] [--out DIR]
#                               render the templates deploy/synapse/homeserver.yaml,
#                               deploy/kuvert/config.yaml and deploy/element/config.json into
#                               deploy/site/ (default); files that exist there are kept unless --force
#   deploy/setup.sh registration [--force]
#                               build Kuvert's image, give Synapse's data volume to Synapse's user,
#                               and generate the application service registration into its volume
#                               (`kuvert generate-registration`); an existing one is kept unless --force
#   deploy/setup.sh             check, render and registration: the usual first run
#
# Templates get only the names and addresses listed in template_vars below, never a secret, so
# nothing in deploy/site/ is secret. Secrets reach the containers as environment variables that
# docker-compose.yml takes from .env.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="$root/.env"
# Where docker-compose.yml expects the rendered files; `render --out` can write elsewhere (tests).
site_dir="$root/deploy/site"
out_dir="$site_dir"
force=0

# Template (relative to deploy/) → rendered file (relative to the output directory): same path.
templates=(synapse/homeserver.yaml kuvert/config.yaml element/config.json)
# The only variables a template may use.
template_vars=(KUVERT_SERVER_NAME SYNAPSE_PUBLIC_URL ELEMENT_PUBLIC_URL KUVERT_PUBLIC_URL JITSI_DOMAIN KUVERT_ADMIN_LOCALPART JITSI_JWT_APP_ID)
# The registration's directory inside the kuvert container (docker-compose.yml mounts the
# appservice-registration volume there; deploy/kuvert/config.yaml names the file in it).
registration_dir=/registration
# Synapse's image runs Synapse as this group (its UID/GID default).
synapse_gid=991

die() {
  printf 'setup.sh: %s\n' "$*" >&2
  exit 1
}

declare -A env=()

# Reads KEY=value lines the way Docker Compose reads .env (comments and blank lines skipped,
# one pair of surrounding quotes removed).
read_env() {
  local file=$1 line key value n=0
  [[ -f $file ]] || die "$file does not exist. Run 'deploy/setup.sh init' or copy deploy/env.example to .env."
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line="${line%$'\r'}"
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || die "$file:$n: expected VARIABLE=value, found: $line"
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    env[$key]=$value
  done <"$file"
}

is_template_var() {
  local v
  for v in "${template_vars[@]}"; do [[ $v == "$1" ]] && return 0; done
  return 1
}

# Checks one template variable's value; prints the problem, if any.
template_value_problem() {
  local name=$1 value=${env[$1]-}
  [[ -n $value ]] || { echo "$name is not set"; return; }
  [[ $value == CHANGE_ME ]] && { echo "$name still says CHANGE_ME"; return; }
  case $name in
  KUVERT_SERVER_NAME)
    [[ $value =~ ^[a-z0-9.-]+(:[0-9]+)?$ ]] || echo "$name must be a lower-case host name (optionally :port), found '$value'" ;;
  JITSI_DOMAIN)
    [[ $value =~ ^[a-z0-9.-]+$ ]] || echo "$name must be a lower-case host name, found '$value'" ;;
  JITSI_JWT_APP_ID)
    [[ $value =~ ^[A-Za-z0-9._-]+$ ]] || echo "$name may contain only letters, digits and ._-, found '$value'" ;;
  *_URL)
    [[ $value =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || echo "$name must be scheme and host only (https://host, no path, no trailing slash), found '$value'" ;;
  KUVERT_ADMIN_LOCALPART)
    if [[ ! $value =~ ^[a-z0-9._=/-]+$ ]]; then
      echo "$name must be a Matrix localpart (a-z 0-9 . _ = / -), found '$value'"
    elif [[ $value == kuvert_* ]]; then
      echo "$name must not start with kuvert_ (Kuvert's exclusive user namespace), found '$value'"
    fi ;;
  esac
}

# Writes the template with every ${NAME} replaced by its value from the env file.
render_one() {
  # shellcheck disable=SC2016 # open is the literal two characters that start a placeholder
  local src=$1 dst=$2 text out="" rest name value open='${' problem
  text="$(<"$src")"
  rest=$text
  while [[ $rest == *"$open"* ]]; do
    out+=${rest%%"$open"*}
    rest=${rest#*"$open"}
    [[ $rest == *'}'* ]] || die "$src: a \${ without its closing }"
    name=${rest%%\}*}
    rest=${rest#*\}}
    is_template_var "$name" || die "$src uses \${$name}, which is not a template variable (allowed: ${template_vars[*]})"
    problem=$(template_value_problem "$name")
    [[ -z $problem ]] || die "$problem"
    value=${env[$name]}
    out+=$value
  done
  out+=$rest
  mkdir -p "$(dirname "$dst")"
  chmod 0755 "$(dirname "$dst")"
  printf '%s\n' "$out" >"$dst.tmp"
  chmod 0644 "$dst.tmp"
  mv "$dst.tmp" "$dst"
}

cmd_render() {
  local t src dst
  read_env "$env_file"
  for t in "${templates[@]}"; do
    src="$root/deploy/$t"
    dst="$out_dir/$t"
    if [[ -e $dst && $force != 1 ]]; then
      echo "kept      $dst (exists; 'render --force' replaces it)"
      continue
    fi
    render_one "$src" "$dst"
    echo "rendered  $dst"
  done
}

# Variables docker-compose.yml declares mandatory with ${NAME:?...}.
mandatory_vars() {
  grep -v '^[[:space:]]*#' "$root/docker-compose.yml" | grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*:\?' | sed -E 's/^\$\{//; s/:\?$//' | sort -u
}

cmd_check() {
  local problems=() name problem
  read_env "$env_file"
  for name in "${template_vars[@]}"; do
    problem=$(template_value_problem "$name")
    [[ -z $problem ]] || problems+=("$problem")
  done
  while IFS= read -r name; do
    is_template_var "$name" && continue
    if [[ -z ${env[$name]-} ]]; then
      problems+=("$name is not set (docker-compose.yml needs it)")
    elif [[ ${env[$name]} == CHANGE_ME ]]; then
      problems+=("$name still says CHANGE_ME ('deploy/setup.sh init' generates secrets for a new .env)")
    fi
  done < <(mandatory_vars)
  for name in SYNAPSE_DB_PASSWORD KUVERT_DB_PASSWORD; do
    if [[ -n ${env[$name]-} && ! ${env[$name]} =~ ^[A-Za-z0-9._~-]+$ ]]; then
      problems+=("$name may contain only letters, digits and ._~- (it goes into a database URL)")
    fi
  done
  for name in POSTGRES_PASSWORD SYNAPSE_DB_PASSWORD KUVERT_DB_PASSWORD KUVERT_PSEUDONYM_KEY KUVERT_E2EE_SECRET JITSI_JWT_APP_SECRET JITSI_UVS_AUTH_TOKEN KUVERT_UPLOAD_CHECK_TOKEN JICOFO_AUTH_PASSWORD JVB_AUTH_PASSWORD; do
    if [[ -n ${env[$name]-} && ${env[$name]} != CHANGE_ME && ${#env[$name]} -lt 16 ]]; then
      problems+=("$name is shorter than 16 characters")
    fi
  done
  if ((${#problems[@]} > 0)); then
    printf '%s is not ready:\n' "$env_file" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  echo "$env_file is complete."
}

random_secret() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

cmd_init() {
  local line
  [[ -e $env_file ]] && die "$env_file exists already; edit it (or move it away to start afresh)."
  umask 077
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=CHANGE_ME$ ]]; then
      printf '%s=%s\n' "${BASH_REMATCH[1]}" "$(random_secret)"
    else
      printf '%s\n' "$line"
    fi
  done <"$root/deploy/env.example" >"$env_file"
  chmod 0600 "$env_file"
  echo "Wrote $env_file with fresh secrets. Now set the names and addresses at its top, then run deploy/setup.sh."
}

compose() {
  docker compose --project-directory "$root" -f "$root/docker-compose.yml" --env-file "$env_file" "$@"
}

cmd_registration() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed"
  docker compose version >/dev/null 2>&1 || die "Docker Compose v2 ('docker compose') is needed"
  [[ -f $env_file ]] || die "$env_file does not exist. Run 'deploy/setup.sh init' first."
  [[ -f $site_dir/kuvert/config.yaml ]] || die "$site_dir/kuvert/config.yaml is missing: run 'deploy/setup.sh render' first"
  compose build kuvert
  # Synapse's image starts as root and runs Synapse as 991:991, but does not hand /data over
  # on `run`: give the fresh volume to Synapse's user (it writes its signing key there).
  compose run --rm --no-deps --user root --entrypoint chown synapse "$synapse_gid:$synapse_gid" /data
  # `kuvert generate-registration` writes the file Kuvert's configuration names
  # (appservice.registrationFile, in the volume at $registration_dir). Kuvert reads it as its
  # own user and Synapse through its group; nobody else may (it holds both tokens).
  compose run --rm --no-deps --user root --entrypoint sh -e FORCE="$force" kuvert -c "
    set -eu
    if [ -n \"\$(ls -A $registration_dir)\" ] && [ \"\$FORCE\" != 1 ]; then
      echo 'The registration exists already; kept (deploy/setup.sh registration --force makes a new one).'
    else
      node bin/kuvert.js generate-registration --force
    fi
    # The repository's registration.yaml is a sample with placeholder tokens; never the real one.
    if grep -qs PLACEHOLDER $registration_dir/*; then
      echo 'The registration in the volume has the sample placeholder tokens; run deploy/setup.sh registration --force for real ones.' >&2
      exit 1
    fi
    chown -R kuvert:$synapse_gid $registration_dir
    chmod 0750 $registration_dir
    find $registration_dir -type f -exec chmod 0640 {} +
  "
  if [[ $force == 1 ]]; then
    echo "New tokens: restart Synapse and Kuvert ('docker compose restart synapse kuvert') if they run."
  fi
}

main() {
  local command=${1:-all}
  [[ $# -gt 0 ]] && shift
  while [[ $# -gt 0 ]]; do
    case $1 in
    --force) force=1 ;;
    --env-file) [[ $# -ge 2 ]] || die "--env-file needs a file"; env_file=$(realpath -m "$2"); shift ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out_dir=$(realpath -m "$2"); shift ;;
    *) die "unknown option $1 (see the head of deploy/setup.sh)" ;;
    esac
    shift
  done
  case $command in
  init) cmd_init ;;
  check) cmd_check ;;
  render) cmd_render ;;
  registration) cmd_registration ;;
  all)
    cmd_check
    cmd_render
    cmd_registration
    echo
    echo "Next: 'docker compose up -d', then create the admin accounts (deploy/README.md, step 6)."
    ;;
  -h | --help | help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
  *) die "unknown command $command (init, check, render, registration)" ;;
  esac
}

main "$@"
