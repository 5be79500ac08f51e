// The host communicators (single, mpi) under any world size: run alone this is a world of one;
// tests/mpi_tests.cmake also runs it under mpirun -np 2 and -np 4. Every rank makes the same
// collective calls in the same order, and checks results only after them, so a failing check on
// one rank never leaves the others waiting.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdint>
#include <memory>
#include <numeric>
#include <string>

#include "parallel/mpi_communicator.h"
#include "parallel/single_communicator.h"
#include "runtime/error.h"

namespace llama_tp {
namespace {

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// "mpi_small_messages" splits every transfer into messages of at most 1000 bytes, which runs the
// code that keeps transfers above 2 GiB within MPI's int counts.
constexpr size_t kSmallMessageBytes = 1000;

std::unique_ptr<Communicator> make(const std::string& kind) {
  if (kind == "single") return std::make_unique<SingleCommunicator>();
  if (kind == "mpi") return std::make_unique<MpiCommunicator>();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, kSmallMessageBytes);
}

class HostCommunicatorTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "single" && world_size() > 1) GTEST_SKIP() << "the single communicator needs a world of 1";
    comm = make(GetParam());
  }
  bool small_messages() const { return GetParam() == "mpi_small_messages"; }
  std::unique_ptr<Communicator> comm;
};

// Small integers: their sums over up to a few ranks are exact in f32, f16 and bf16 alike.
float base_value(size_t i, DType dtype) {
  return dtype == DType::F32 ? float(int64_t(i * 7 + 3) % 201 - 100) : float(int64_t(i % 17) - 8);
}

Tensor filled(size_t n, DType dtype, int rank) {
  Tensor t = Tensor::empty({int64_t(n)}, dtype);
  for (size_t i = 0; i < n; ++i) {
    float v = float(rank + 1) * base_value(i, dtype);
    if (dtype == DType::F32) t.data<float>()[i] = v;
    else if (dtype == DType::F16) t.data<uint16_t>()[i] = f32_to_f16(v);
    else t.data<uint16_t>()[i] = f32_to_bf16(v);
  }
  return t;
}

// Rank r contributed (r + 1) * base, so the sum is base * world * (world + 1) / 2.
void expect_summed(const Tensor& t, int world) {
  std::vector<float> got = t.to_floats();
  float factor = float(world * (world + 1) / 2);
  size_t wrong = 0, first_wrong = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != factor * base_value(i, t.dtype()) && wrong++ == 0) first_wrong = i;
  EXPECT_EQ(wrong, 0u) << "of " << got.size() << " " << dtype_name(t.dtype()) << " elements; first at " << first_wrong
                       << ": got " << got[first_wrong] << ", want " << factor * base_value(first_wrong, t.dtype());
}

TEST_P(HostCommunicatorTest, AllReduceSumsEveryDtypeAndSize) {
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    // 1 element up to 16M f32 elements (64 MB); small messages stop at 1M to keep the run short.
    for (size_t n : {size_t(1), size_t(7), size_t(1000), size_t(1) << 20, size_t(16) << 20}) {
      if (small_messages() && n > (size_t(1) << 20)) continue;
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " x " + std::to_string(n));
      Tensor t = filled(n, dtype, comm->rank());
      comm->all_reduce_sum(t);
      expect_summed(t, comm->size());
    }
  }
}

TEST_P(HostCommunicatorTest, AllReduceOfEmptyTensorDoesNothing) {
  Tensor t = Tensor::empty({0, 4}, DType::F32);
  EXPECT_NO_THROW(comm->all_reduce_sum(t));
}

TEST_P(HostCommunicatorTest, AllReduceRefusesIntegerTensors) {
  Tensor t = Tensor::zeros({4}, DType::I32);
  try {
    comm->all_reduce_sum(t);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "all_reduce_sum supports f32, f16 and bf16 tensors, not i32");
  }
}

TEST_P(HostCommunicatorTest, BroadcastFromFirstAndLastRank) {
  for (int root : {0, comm->size() - 1}) {
    // 1 byte up to 64 MB; small messages stop at 1 MB.
    for (size_t n : {size_t(1), size_t(1001), size_t(1) << 20, size_t(64) << 20}) {
      if (small_messages() && n > (size_t(1) << 20)) continue;
      SCOPED_TRACE("root " + std::to_string(root) + ", " + std::to_string(n) + " bytes");
      std::vector<uint8_t> data(n, 0);
      if (comm->rank() == root)
        for (size_t i = 0; i < n; ++i) data[i] = uint8_t(i * 31 + 7 + root);
      comm->broadcast(data.data(), n, root);
      size_t wrong = 0;
      for (size_t i = 0; i < n; ++i) wrong += data[i] != uint8_t(i * 31 + 7 + root);
      EXPECT_EQ(wrong, 0u);
    }
  }
}

TEST_P(HostCommunicatorTest, GatherUnevenCountsInRankOrder) {
  int world = comm->size();
  // Rank 1 sends nothing; the others send different, uneven amounts, each more than one small
  // message.
  std::vector<size_t> counts(world);
  for (int r = 0; r < world; ++r) counts[r] = r == 1 ? 0 : size_t(r + 1) * 1500 + 3;
  size_t total = std::accumulate(counts.begin(), counts.end(), size_t(0));
  for (int root : {0, world - 1}) {
    SCOPED_TRACE("root " + std::to_string(root));
    int me = comm->rank();
    std::vector<uint8_t> send(counts[me]);
    for (size_t i = 0; i < send.size(); ++i) send[i] = uint8_t(me * 50 + i);
    std::vector<uint8_t> recv(me == root ? total : 0, 0xee);
    comm->gather(send.data(), send.size(), me == root ? recv.data() : nullptr, counts, root);
    if (me != root) continue;
    size_t offset = 0, wrong = 0;
    for (int r = 0; r < world; ++r)
      for (size_t i = 0; i < counts[r]; ++i) wrong += recv[offset++] != uint8_t(r * 50 + i);
    EXPECT_EQ(wrong, 0u);
  }
}

TEST_P(HostCommunicatorTest, GatherRefusesCountsThatDisagree) {
  std::vector<size_t> counts(comm->size(), 4);
  uint8_t send[4] = {}, recv[64] = {};
  EXPECT_THROW(comm->gather(send, 3, recv, counts, 0), Error);  // this rank sends 3, counts say 4
  std::vector<size_t> one_too_many(comm->size() + 1, 4);
  EXPECT_THROW(comm->gather(send, 4, recv, one_too_many, 0), Error);
}

TEST_P(HostCommunicatorTest, RefusesRootsOutsideTheWorld) {
  uint8_t byte = 0;
  EXPECT_THROW(comm->broadcast(&byte, 1, comm->size()), Error);
  EXPECT_THROW(comm->broadcast(&byte, 1, -1), Error);
  std::vector<size_t> counts(comm->size(), 1);
  EXPECT_THROW(comm->gather(&byte, 1, &byte, counts, comm->size()), Error);
}

TEST_P(HostCommunicatorTest, BarrierAndSynchronizeReturn) {
  comm->barrier();
  comm->synchronize();
  comm->barrier();
}

INSTANTIATE_TEST_SUITE_P(Kinds, HostCommunicatorTest, ::testing::Values("single", "mpi", "mpi_small_messages"),
                         [](const auto& info) { return info.param; });

TEST(MpiCommunicator, NameRankAndSizeMatchMpi) {
  MpiCommunicator comm;
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  EXPECT_EQ(comm.name(), "mpi");
  EXPECT_EQ(comm.rank(), rank);
  EXPECT_EQ(comm.size(), world_size());
}

TEST(MpiCommunicator, RefusesTooSmallMessageLimit) {
  EXPECT_THROW(MpiCommunicator(MPI_COMM_WORLD, 4), Error);
}

TEST(SingleCommunicator, GatherCopiesSendIntoRecv) {
  SingleCommunicator comm;
  const char send[] = "logits";
  char recv[sizeof(send)] = {};
  comm.gather(send, sizeof(send), recv, {sizeof(send)}, 0);
  EXPECT_STREQ(recv, "logits");
}

}  // namespace
}  // namespace llama_tp
