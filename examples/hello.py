"""The smallest himl script: it squares numbers and keeps the result.

python examples/hello.py --n 10                 # a local run, in this process
himl submit examples/hello.py -- --n 10         # the same, through the local backend
python examples/hello.py --n 10 --himl-compute local
"""

import argparse
import csv

from himl_kernel import log_metrics, submit_if_needed


def main() -> None:
    run_info = submit_if_needed()  # removes --himl-compute NAME before argparse sees it
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5, help="how many numbers to square")
    args = parser.parse_args()

    total = 0
    out = run_info.output_folder / "squares.csv"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["i", "square"])
        for i in range(args.n):
            writer.writerow([i, i * i])
            total += i * i
            log_metrics({"running_sum": total}, step=i)
    log_metrics({"sum": total})
    print(f"hello: sum of squares below {args.n} is {total}; written to {out}")


if __name__ == "__main__":
    main()
