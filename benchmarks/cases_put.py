"""Uploads: local → local provider, and local → real servers from tests/servers/."""

from __future__ import annotations

from benchmarks.data import make_big_file, make_small_files
from benchmarks.harness import Context, GiB, Group, KiB, MiB, Row, case, removed_after
from benchmarks.puts import local_destination, put_rows, server_destination

SMALL_COUNT, SMALL_SIZE = 2000, 16 * KiB
MANY_COUNT, MANY_SIZE = 20_000, 4 * KiB
MANY_TOP = MANY_SUB = 10  # 110 directories, ~180 files in each of the 100 leaves
MANY_SEED = 20_000
# the targets of put-local-many (docs/benchmarks.md): cdir/rclone at most this
MANY_TARGET_PUT, MANY_TARGET_RERUN = 1.5, 1.0

LOCAL = Group(
    "put-local",
    "put to a local provider",
    "`cdir put SRC/ /bench -r --to localdst --parallel 4` (a local provider in a fresh "
    "CDIR_HOME) against `rclone copy SRC DST --transfers 4 --checkers 4` (empty RCLONE_CONFIG), "
    "local disk to local disk. The re-run repeats the same command on the finished copy: "
    "cdir skips by its catalog (size + mtime), rclone by listing both sides.",
    rank=10,
)

REMOTE = Group(
    "put-remote",
    "put to real servers",
    "The same two commands into a server from tests/servers/ started for each run (fresh "
    "store): SeaweedFS for S3, OpenSSH for SFTP, all on 127.0.0.1. Server start-up is not "
    "timed.",
    rank=20,
)


@case("put-local-small", LOCAL, "2,000 x 16 KiB in 20 dirs, local → local, and a re-run")
def put_local_small(ctx: Context) -> list[Row]:
    src = ctx.scratch("src")
    with removed_after(src):
        expected = make_small_files(src, SMALL_COUNT, SMALL_SIZE)
        return put_rows(ctx, src, expected, local_destination, "2,000 x 16 KiB", rerun=True)


@case("put-local-many", LOCAL, "20,000 x 4 KiB in 110 dirs, local → local, and a re-run")
def put_local_many(ctx: Context) -> list[Row]:
    src = ctx.scratch("src")
    with removed_after(src):
        expected = make_small_files(
            src, MANY_COUNT, MANY_SIZE, top=MANY_TOP, sub=MANY_SUB, seed=MANY_SEED
        )
        put, rerun = put_rows(ctx, src, expected, local_destination, "20,000 x 4 KiB", rerun=True)
        put.notes.insert(0, f"target ≤ {MANY_TARGET_PUT:.1f}x rclone")
        rerun.notes.insert(0, f"target ≤ {MANY_TARGET_RERUN:.1f}x rclone")
        return [put, rerun]


@case("put-local-big", LOCAL, "1 x 256 MiB, local → local, and a re-run")
def put_local_big(ctx: Context) -> list[Row]:
    src = ctx.scratch("src")
    with removed_after(src):
        expected = make_big_file(src / "big.bin", 256 * MiB)
        return put_rows(ctx, src, expected, local_destination, "1 x 256 MiB", rerun=True)


def _remote(ctx: Context, kind: str, label: str, big: bool) -> list[Row]:
    destination = server_destination(kind)  # raises Skip when the fixture is not usable
    src = ctx.scratch("src")
    notes = ["rclone sftp with disable_hashcheck"] if kind == "sftp" else []
    with removed_after(src):
        if big:
            expected = make_big_file(src / "big.bin", GiB)
            what = "1 x 1 GiB"
        else:
            expected = make_small_files(src, SMALL_COUNT, SMALL_SIZE)
            what = "2,000 x 16 KiB"
        return put_rows(
            ctx, src, expected, destination, f"{what} → {label}", rerun=False, notes=notes
        )


@case("put-s3-small", REMOTE, "2,000 x 16 KiB → SeaweedFS (S3)")
def put_s3_small(ctx: Context) -> list[Row]:
    return _remote(ctx, "s3", "S3 (SeaweedFS)", big=False)


@case("put-s3-big", REMOTE, "1 x 1 GiB → SeaweedFS (S3)")
def put_s3_big(ctx: Context) -> list[Row]:
    return _remote(ctx, "s3", "S3 (SeaweedFS)", big=True)


@case("put-sftp-small", REMOTE, "2,000 x 16 KiB → OpenSSH (SFTP)")
def put_sftp_small(ctx: Context) -> list[Row]:
    return _remote(ctx, "sftp", "SFTP (OpenSSH)", big=False)


@case("put-sftp-big", REMOTE, "1 x 1 GiB → OpenSSH (SFTP)")
def put_sftp_big(ctx: Context) -> list[Row]:
    return _remote(ctx, "sftp", "SFTP (OpenSSH)", big=True)
