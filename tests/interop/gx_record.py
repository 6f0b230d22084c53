"""Records Great Expectations' SUMMARY results for Cairn's expectation tests.

Not run in CI: it was run once with great-expectations==1.24.1 and pandas 2.3.3 and its output is
kept in crates/cairn-quality/tests/fixtures/people.gx.json, which the Rust test compares with.
Usage: gx_record.py DATA.csv SUITE.json > RESULTS.json
"""
import json
import sys

import great_expectations as gx
import pandas as pd


def raised(info):
    # GX 1.x keys exception details by metric; older versions keep one flat dict.
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(v.get("raised_exception", False) for v in info.values() if isinstance(v, dict))


def main():
    df = pd.read_csv(sys.argv[1])
    suite_json = json.load(open(sys.argv[2]))
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = gx.ExpectationSuite(name="people")
    for e in suite_json["expectations"]:
        cls = gx.expectations.registry.get_expectation_impl(e["type"])
        suite.add_expectation(cls(**e["kwargs"]))
    suite = context.suites.add(suite)
    result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    out = {
        "statistics": result["statistics"],
        "success": result["success"],
        "results": [
            {
                "type": r["expectation_config"]["type"],
                "kwargs": {
                    k: v
                    for k, v in r["expectation_config"]["kwargs"].items()
                    if k != "batch_id"
                },
                "success": r["success"],
                "result": r["result"],
                "exception": raised(r["exception_info"]),
            }
            for r in result["results"]
        ],
    }
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
