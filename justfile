# Everyday commands. The README's two commands are `just run` and `just test`.

default:
    @just --list

# Build and run the demo on SQLite (migrate, seed if empty, print figures and logins).
run *args:
    bash scripts/run.sh {{args}}

# The whole test suite on SQLite and PostgreSQL.
test:
    bash scripts/test.sh

# What CI runs.
ci:
    bash .ci/run

# Reseed the SQLite demo database.
seed scale="standard":
    cargo run --release -p napiatke-web --bin napiatke -- seed --scale {{scale}} --force

# Criterion benches (full runs; CI uses --quick).
bench *args:
    cargo bench -p napiatke-benches {{args}}

# Load run for every page (wrk, 32 connections): sqlite or postgres.
load engine="sqlite":
    bash scripts/load.sh {{engine}}

fmt:
    cargo fmt --all

clippy:
    cargo clippy --workspace --all-targets -- -D warnings
