"""Suite-wide test settings.

Hypothesis runs 200 examples per property test and no deadline (the first call
compiles the numba kernels). ``pytest --hypothesis-profile=quick`` runs 10, for
a fast local loop.
"""

from hypothesis import settings

settings.register_profile("labeler", max_examples=200, deadline=None)
settings.register_profile("quick", max_examples=10, deadline=None)
settings.load_profile("labeler")


# -- fixtures of the runner, resume and CLI tests ------------------------------

import pytest  # noqa: E402

#: A grid of four configurations for the runner, resume and CLI tests: two
#: sides, a horizon in bars and one in time.
SMALL_GRID = """\
[grid]
side = ["long", "short"]
target = 0.003
stop = 0.002
horizon = [30, "2h"]
"""


@pytest.fixture(scope="session")
def small_table():
    """Eight sessions (3,120 one-minute bars) of the bundled synthetic series."""
    from engine.sample import sample_table

    return sample_table(days=8)


@pytest.fixture(scope="session")
def small_data(small_table, tmp_path_factory):
    """``small_table`` as a Parquet file."""
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("data") / "bars.parquet"
    pq.write_table(small_table, path)
    return path


@pytest.fixture(scope="session")
def small_grid(tmp_path_factory):
    """``SMALL_GRID`` as a grid file."""
    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text(SMALL_GRID)
    return path


@pytest.fixture(scope="session")
def read_labels():
    """A function reading an output folder's labels as one sorted table."""

    def read(out):
        import pyarrow.dataset as ds

        table = ds.dataset(
            f"{out}/labels", format="parquet", partitioning="hive"
        ).to_table()
        return table.sort_by([("config", "ascending"), ("event_index", "ascending")])

    return read
