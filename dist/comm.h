#pragma once
// The processes of a data-parallel job (issue 24): MPI between processes (Open MPI,
// started with mpirun, one machine or many); NCCL between GPUs, with MPI passing it the
// unique id, is dist/nccl.h. Without mpirun (or in a build without MPI) the job is this one process and
// every collective is the identity.
//
// Collectives give every rank the same bits: a sum is reduced to rank 0 and broadcast
// (never a scheme whose rounding could differ between ranks), so parameters stay equal.
// Every wait has a timeout (default 300 s, MEMEL_DIST_TIMEOUT_S): a rank that stops
// answering makes the others fail with an error naming the collective and the timeout,
// never hang; a rank that dies ends the job through mpirun, which names it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace memel::dist {

class Group {
 public:
  // The job's group: MPI_COMM_WORLD under mpirun, else a group of one. MPI is
  // initialised on first use and finalised at exit.
  static Group& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // True when this build can run on several processes (MPI was found at configure time).
  static bool built_with_mpi();
  std::string describe() const;  // "rank 1 of 2 (Open MPI 4.1.4)" / "one process"

  void set_timeout(double seconds);
  double timeout() const { return timeout_s_; }

  // In place: every rank ends with the elementwise sum over the ranks (f32, f64, i32,
  // i64; any device: tensors not in contiguous host memory are staged through the host;
  // no NCCL path yet).
  void allreduce_sum(Tensor& t) const;
  void allreduce_sum(std::vector<double>& v) const;
  // In place: every rank ends with rank `root`'s values.
  void broadcast(Tensor& t, int root = 0) const;
  void broadcast(std::vector<double>& v, int root = 0) const;
  void broadcast_bytes(std::vector<uint8_t>& v, int root = 0) const;  // e.g. NCCL's unique id
  // The values of every rank, rank-major (every rank must pass the same count).
  std::vector<double> allgather(const std::vector<double>& v) const;
  void barrier() const;
  // Seconds this process has spent waiting in collectives (all of them, since start).
  double waited_s() const;
  // Ends every process of the job at once (MPI_Abort) with this exit code; a no-op in
  // one process. For a rank that failed while the others may be inside a collective.
  [[noreturn]] void abort(int code) const;

  // A sum started now and finished by wait(): buckets of gradients go out while the
  // backward pass goes on. The tensor must stay alive and untouched until wait().
  class Pending {
   public:
    Pending();
    ~Pending();
    Pending(Pending&&) noexcept;
    Pending& operator=(Pending&&) noexcept;
    void wait();
    bool done() const;
    // Lets the sum advance without waiting (MPI moves a non-blocking collective on only
    // inside MPI calls).
    void progress();

   private:
    friend class Group;
    struct State;
    std::unique_ptr<State> s_;
  };
  Pending start_allreduce_sum(Tensor& t) const;

 private:
  Group();
  int rank_ = 0, size_ = 1;
  double timeout_s_ = 300.0;
};

}  // namespace memel::dist
