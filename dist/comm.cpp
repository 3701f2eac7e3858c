#include "dist/comm.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#ifdef MEMEL_WITH_MPI
#include <mpi.h>
#endif

#include "core/error.h"

namespace memel::dist {

namespace {

double g_waited_s = 0;  // time in wait_request (collectives run on one thread)

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

#ifdef MEMEL_WITH_MPI
MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
  }
  MEMEL_FAIL("[dist] unsupported dtype");
}

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  MEMEL_FAIL("[dist] ", call, " failed: ", std::string(msg, size_t(len)));
}

// Waits for a request, giving up after `timeout` seconds.
void wait_request(MPI_Request& req, double timeout, const char* what, int rank) {
  const auto start = std::chrono::steady_clock::now();
  int flag = 0;
  for (int spins = 0;; ++spins) {
    check_mpi(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (flag) {
      g_waited_s += waited;
      return;
    }
    MEMEL_CHECK(waited < timeout, "[dist] rank ", rank, ": ", what, " did not complete within ", timeout,
                " s (MEMEL_DIST_TIMEOUT_S); another rank has stopped answering");
    if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

struct MpiSession {
  bool active = false;
  MpiSession() {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    }
    active = true;
  }
  ~MpiSession() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (active && !fin) MPI_Finalize();
  }
};
#endif

// A host buffer holding t's values (t itself when it is contiguous CPU memory).
Tensor host_copy(const Tensor& t) {
  if (t.device().is_cpu() && t.is_contiguous()) return t;
  return t.to(Device::cpu()).contiguous_copy();
}

}  // namespace

struct Group::Pending::State {
  Tensor target;  // the caller's tensor
  Tensor host;    // the buffer the collective works on
  double timeout = 300;
  int rank = 0;
  bool finished = true;
#ifdef MEMEL_WITH_MPI
  MPI_Request req = MPI_REQUEST_NULL;
  void start_broadcast() {
    check_mpi(MPI_Ibcast(host.device_data(), int(host.numel()), mpi_type(host.dtype()), 0, MPI_COMM_WORLD, &req),
              "MPI_Ibcast");
  }
#endif
};

Group::Pending::Pending() = default;
Group::Pending::~Pending() = default;
Group::Pending::Pending(Pending&&) noexcept = default;
Group::Pending& Group::Pending::operator=(Pending&&) noexcept = default;
bool Group::Pending::done() const { return !s_ || s_->finished; }

void Group::Pending::wait() {
  if (!s_ || s_->finished) return;
#ifdef MEMEL_WITH_MPI
  State& s = *s_;
  // Reduce to rank 0 (started, in place there), then broadcast rank 0's sum: the same
  // bits on every rank.
  wait_request(s.req, s.timeout, "the gradient all-reduce (reduce to rank 0)", s.rank);
  s.start_broadcast();
  wait_request(s.req, s.timeout, "the gradient all-reduce (broadcast)", s.rank);
  if (!s.host.same_storage(s.target)) s.target.copy_from(s.host);
#endif
  s_->finished = true;
}

void Group::Pending::progress() {
  if (!s_ || s_->finished) return;
#ifdef MEMEL_WITH_MPI
  State& s = *s_;
  // Only a test: every rank must start its collectives in the same order, so the
  // broadcast half starts in wait(), bucket after bucket.
  int flag = 0;
  check_mpi(MPI_Test(&s.req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
#endif
}

Group::Group() {
  if (const char* t = std::getenv("MEMEL_DIST_TIMEOUT_S")) {
    char* end = nullptr;
    const double v = std::strtod(t, &end);
    MEMEL_CHECK(end && *end == '\0' && v > 0, "[dist] MEMEL_DIST_TIMEOUT_S must be a positive number of seconds, got '",
                t, "'");
    timeout_s_ = v;
  }
#ifdef MEMEL_WITH_MPI
  if (launched_by_mpirun()) {
    static MpiSession session;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
#else
  MEMEL_CHECK(!launched_by_mpirun() || std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr ||
                  std::string(std::getenv("OMPI_COMM_WORLD_SIZE")) == "1",
              "[dist] started by mpirun with several processes, but this build of memel has no MPI (install "
              "libopenmpi-dev and reconfigure)");
#endif
}

double Group::waited_s() const { return g_waited_s; }

void Group::abort(int code) const {
#ifdef MEMEL_WITH_MPI
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::_Exit(code);
}

Group& Group::world() {
  static Group g;
  return g;
}

bool Group::built_with_mpi() {
#ifdef MEMEL_WITH_MPI
  return true;
#else
  return false;
#endif
}

std::string Group::describe() const {
  if (size_ == 1) return "one process";
#ifdef MEMEL_WITH_MPI
  char lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  std::string l(lib, size_t(len));
  const size_t cut = l.find(',');
  return str_cat("rank ", rank_, " of ", size_, " (", cut == std::string::npos ? l : l.substr(0, cut), ")");
#else
  return "one process";
#endif
}

void Group::set_timeout(double seconds) {
  MEMEL_CHECK(seconds > 0, "[dist] timeout must be positive, got ", seconds);
  timeout_s_ = seconds;
}

Group::Pending Group::start_allreduce_sum(Tensor& t) const {
  Pending p;
  p.s_ = std::make_unique<Pending::State>();
  Pending::State& s = *p.s_;
  s.target = t;
  s.timeout = timeout_s_;
  s.rank = rank_;
  if (size_ == 1 || t.numel() == 0) return p;
#ifdef MEMEL_WITH_MPI
  s.host = host_copy(t);
  void* buf = s.host.device_data();
  check_mpi(MPI_Ireduce(rank_ == 0 ? MPI_IN_PLACE : buf, rank_ == 0 ? buf : nullptr, int(s.host.numel()),
                        mpi_type(s.host.dtype()), MPI_SUM, 0, MPI_COMM_WORLD, &s.req),
            "MPI_Ireduce");
  s.finished = false;
#endif
  return p;
}

void Group::allreduce_sum(Tensor& t) const {
  Pending p = start_allreduce_sum(t);
  p.wait();
}

void Group::allreduce_sum(std::vector<double>& v) const {
  if (size_ == 1 || v.empty()) return;
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  allreduce_sum(t);
  v = t.to_vector();
}

void Group::broadcast(Tensor& t, int root) const {
  if (size_ == 1 || t.numel() == 0) return;
#ifdef MEMEL_WITH_MPI
  Tensor h = host_copy(t);
  MPI_Request req;
  check_mpi(MPI_Ibcast(h.device_data(), int(h.numel()), mpi_type(h.dtype()), root, MPI_COMM_WORLD, &req),
            "MPI_Ibcast");
  wait_request(req, timeout_s_, "a broadcast", rank_);
  if (!h.same_storage(t)) t.copy_from(h);
#endif
}

void Group::broadcast(std::vector<double>& v, int root) const {
  if (size_ == 1 || v.empty()) return;
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  broadcast(t, root);
  v = t.to_vector();
}

void Group::broadcast_bytes(std::vector<uint8_t>& v, int root) const {
  if (size_ == 1 || v.empty()) return;
#ifdef MEMEL_WITH_MPI
  MPI_Request req;
  check_mpi(MPI_Ibcast(v.data(), int(v.size()), MPI_BYTE, root, MPI_COMM_WORLD, &req), "MPI_Ibcast");
  wait_request(req, timeout_s_, "a broadcast", rank_);
#endif
}

std::vector<double> Group::allgather(const std::vector<double>& v) const {
  if (size_ == 1) return v;
  std::vector<double> out(v.size() * size_t(size_));
#ifdef MEMEL_WITH_MPI
  MPI_Request req;
  check_mpi(MPI_Iallgather(v.data(), int(v.size()), MPI_DOUBLE, out.data(), int(v.size()), MPI_DOUBLE, MPI_COMM_WORLD,
                           &req),
            "MPI_Iallgather");
  wait_request(req, timeout_s_, "an all-gather", rank_);
#endif
  return out;
}

void Group::barrier() const {
  if (size_ == 1) return;
#ifdef MEMEL_WITH_MPI
  MPI_Request req;
  check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
  wait_request(req, timeout_s_, "a barrier", rank_);
#endif
}

}  // namespace memel::dist
