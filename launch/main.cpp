// llama_tp: the executable. Starts MPI (a world of one without mpirun), parses options, and
// runs the subcommand. Every error ends up here: one line "llama_tp: error: ..." (with the rank
// when several run) and MPI_Abort, so that no rank is left waiting in a collective.
#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "launch/bench.h"
#include "launch/engine.h"
#include "launch/generate.h"
#include "launch/options.h"
#include "parallel/runtime_env.h"
#include "runtime/error.h"

namespace {

int world_rank() {
  int rank = 0;
  if (llama_tp::mpi_is_active()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 1;
  if (llama_tp::mpi_is_active()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// Prints the error once and ends the whole job. Rank 0 reports at once; another rank waits a
// second first, so that an error every rank hits (a bad option, a bad config.json) is printed
// once, by rank 0, whose MPI_Abort ends the others during that second, while an error only
// that rank hits (its shard is truncated, its GPU is full) is still printed, with its number.
[[noreturn]] void fail(const std::string& message) {
  const int rank = world_rank(), size = world_size();
  if (rank != 0) sleep(1);
  std::string who = size > 1 ? "rank " + std::to_string(rank) + ": " : "";
  std::fprintf(stderr, "llama_tp: error: %s%s\n", who.c_str(), message.c_str());
  std::fflush(stderr);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace llama_tp;
  // MPI stays up until after the catch blocks: fail() needs it to print the rank and abort
  // the job (finalising first would make the other ranks wait for this one forever).
  std::unique_ptr<MpiSession> mpi;
  try {
    mpi = std::make_unique<MpiSession>(&argc, &argv);
    RankInfo ranks = query_rank_info();
    Options o = parse_options(argc, argv);
    if (o.help) {
      if (ranks.rank == 0) std::cout << o.help_text;
      return 0;
    }
    switch (o.command) {
      case Command::Tokenize:
        if (ranks.rank == 0) run_tokenize(o);
        return 0;
      case Command::Detokenize:
        if (ranks.rank == 0) run_detokenize(o);
        return 0;
      case Command::Run: {
        Engine e = start_engine(o, ranks, true);
        run_generation(e, o);
        break;
      }
      case Command::Bench: {
        Engine e = start_engine(o, ranks, false);
        run_bench(e, o);
        break;
      }
    }
    std::fflush(stdout);
  } catch (const Error& e) {
    fail(e.what());
  } catch (const std::bad_alloc&) {
    fail("out of host memory");
  } catch (const std::exception& e) {
    fail(std::string("unexpected: ") + e.what());
  }
  return 0;
}
