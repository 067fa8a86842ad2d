"""Cloud to cloud: files already on S3 (SeaweedFS) copied to Azure Blob (Azurite).

Both tools stream the bytes through this machine: cdir with `replicate` (the catalog learnt the
S3 copy by an untimed `cdir scan`), rclone with `copy` between two remotes.
"""

from __future__ import annotations

import inspect
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.data import make_big_file, make_small_files
from benchmarks.harness import (
    BenchError,
    Context,
    GiB,
    Group,
    KiB,
    Row,
    Series,
    alternate,
    case,
    removed_after,
    rss_note,
)
from benchmarks.puts import PARALLEL, add_provider, check_copy, record, server_fixture

CLOUD = Group(
    "cloud-copy",
    "copy between clouds",
    "Files already on S3 (SeaweedFS, seeded untimed with rclone) copied to Azure Blob "
    "(Azurite, disk-backed, a fresh server per run): `cdir replicate /bench -r --to azdst "
    "--parallel 4`, after an untimed `cdir scan` told a fresh catalog what S3 holds, against "
    "`rclone copy S3:…/bench AZ:…/bench --transfers 4 --checkers 4`. Both stream the bytes "
    "through this machine.",
    rank=25,
)


@contextmanager
def _azure(ctx: Context, mod: Any) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """A fresh Azurite on disk (memory mode cannot hold big files): (provider_config,
    rclone env for remote AZDST); the store is deleted after."""
    store = ctx.scratch("azurite")
    kwargs = (
        {"location": store}
        if "location" in inspect.signature(mod.azure_server_running).parameters
        else {}
    )
    with removed_after(store), mod.azure_server_running(**kwargs) as server:
        yield mod.provider_config(server), mod.rclone_env(server, "AZDST")


def _s3_to_azure(ctx: Context, big: bool) -> list[Row]:
    s3mod, azmod = server_fixture("s3"), server_fixture("azure")  # Skip if not usable
    src = ctx.scratch("src")
    with removed_after(src):
        if big:
            files, size = make_big_file(src / "big.bin", GiB)
            label = "1 x 1 GiB S3 → Azure"
        else:
            files, size = make_small_files(src, 2000, 16 * KiB)
            label = "2,000 x 16 KiB S3 → Azure"
        with s3mod.s3_server_running() as s3:
            s3cfg = s3mod.provider_config(s3)
            s3env = s3mod.rclone_env(s3, "S3SRC")
            source = f"S3SRC:{s3cfg['root']}/bench"
            ctx.setup(
                ctx.rclone_cmd("copy", str(src), source, "--transfers", PARALLEL),
                ctx.rclone_env(**s3env),
            )
            shutil.rmtree(src)  # the S3 copy is the source now: one less GiB on disk
            cdir_s, rclone_s = Series([]), Series([])
            row = Row(f"copy {label}", cdir_s, rclone_s)

            def run_cdir() -> None:
                home = ctx.scratch("cdir-home")
                with removed_after(home), _azure(ctx, azmod) as (azcfg, azenv):
                    env = ctx.cdir_env(home)
                    add_provider(ctx, env, "s3src", s3cfg)
                    add_provider(ctx, env, "azdst", azcfg)
                    out = ctx.setup(ctx.cdir_cmd("scan", "s3src"), env)
                    if not re.search(rf"\b{files} file\(s\)", out):
                        raise BenchError(f"cdir scan did not find the {files} files: {out}")
                    cmd = ctx.cdir_cmd(
                        "replicate", "/bench", "-r", "--to", "azdst", "--parallel", PARALLEL
                    )
                    record(cdir_s, ctx, cmd, ctx.measure(cmd, env).sample)
                    check_copy(
                        ctx,
                        f"AZDST:{azcfg['root']}/bench",
                        ctx.rclone_env(**azenv),
                        files,
                        size,
                        "cdir replicate",
                    )

            def run_rclone() -> None:
                with _azure(ctx, azmod) as (azcfg, azenv):
                    dest = f"AZDST:{azcfg['root']}/bench"
                    env = ctx.rclone_env(**s3env, **azenv)
                    cmd = ctx.rclone_cmd(
                        "copy", source, dest, "--transfers", PARALLEL, "--checkers", PARALLEL
                    )
                    record(rclone_s, ctx, cmd, ctx.measure(cmd, env).sample)
                    check_copy(ctx, dest, env, files, size, "rclone copy")

            for i in range(ctx.repeats):
                ctx.log(f"  {label}: repetition {i + 1}/{ctx.repeats}")
                alternate(i, run_cdir, run_rclone)
    row.notes.append(rss_note(row))
    return [row]


@case("copy-s3-azure-small", CLOUD, "2,000 x 16 KiB, S3 (SeaweedFS) → Azure (Azurite)")
def copy_s3_azure_small(ctx: Context) -> list[Row]:
    return _s3_to_azure(ctx, big=False)


@case("copy-s3-azure-big", CLOUD, "1 x 1 GiB, S3 (SeaweedFS) → Azure (Azurite)")
def copy_s3_azure_big(ctx: Context) -> list[Row]:
    return _s3_to_azure(ctx, big=True)
