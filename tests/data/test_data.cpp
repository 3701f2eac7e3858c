#include <doctest/doctest.h>

#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <fstream>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "data/idx.h"

using namespace memel;

namespace {

std::string tmp_path(const std::string& name) { return std::string(MEMEL_BINARY_DIR) + "/test_data_" + name; }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A dataset of n examples: "x" (2, 3) F32 holding i, "label" () I64 = i.
std::shared_ptr<TensorDataset> counting_dataset(int64_t n) {
  std::vector<float> x;
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 6; ++k) x.push_back(static_cast<float>(i) + 0.1f * k);
    y.push_back(i);
  }
  return std::make_shared<TensorDataset>(std::map<std::string, Tensor>{
      {"x", Tensor::from_vector(x, {n, 2, 3})}, {"label", Tensor::from_vector(y, {n})}});
}

// The labels of every batch of one epoch.
std::vector<std::vector<int64_t>> epoch_labels(DataLoader& dl) {
  std::vector<std::vector<int64_t>> out;
  Example b;
  while (dl.next(b)) out.push_back(b.at("label").to_vector_as<int64_t>());
  return out;
}

// A dataset without a fast get_batch, to exercise get() + collate().
class SlowDataset : public Dataset {
 public:
  int64_t size() const override { return 10; }
  Example get(int64_t i) const override {
    return {{"v", Tensor::full({2}, static_cast<double>(i))}, {"label", Tensor::scalar(static_cast<double>(i), DType::I64)}};
  }
};

}  // namespace

TEST_CASE("idx: round trip, plain and gzip, for every type") {
  Tensor t = Tensor::from_vector(std::vector<float>{0, 1, 2, 127, 128, 255, 3, 4, 5, 6, 7, 8}, {2, 3, 2});
  for (bool gz : {false, true}) {
    for (IdxType ty : {IdxType::U8, IdxType::I16, IdxType::I32, IdxType::F32, IdxType::F64}) {
      std::string path = tmp_path("rt.idx");
      write_idx(path, t, ty, gz);
      Tensor f = read_idx(path, DType::F32);
      CHECK(f.shape() == Shape{2, 3, 2});
      CHECK(f.to_vector() == t.to_vector());
      Tensor l = read_idx(path, DType::I64);
      CHECK(l.dtype() == DType::I64);
      CHECK(l.to_vector() == t.to_vector());
      std::remove(path.c_str());
    }
  }
  // The gzip file really is compressed (starts with the gzip magic); the plain one is not.
  Tensor big = Tensor::zeros({1000});
  write_idx(tmp_path("z.idx.gz"), big, IdxType::U8, true);
  write_idx(tmp_path("z.idx"), big, IdxType::U8, false);
  std::ifstream zf(tmp_path("z.idx.gz"), std::ios::binary), pf(tmp_path("z.idx"), std::ios::binary);
  CHECK(zf.get() == 0x1f);
  CHECK(zf.get() == 0x8b);
  pf.seekg(0, std::ios::end);
  CHECK(pf.tellg() == 4 + 4 + 1000);
  // Signed types keep their sign.
  Tensor neg = Tensor::from_vector(std::vector<float>{-5, 3}, {2});
  write_idx(tmp_path("neg.idx"), neg, IdxType::I8, false);
  CHECK(read_idx(tmp_path("neg.idx")).to_vector() == std::vector<double>{-5, 3});
  for (const char* n : {"z.idx.gz", "z.idx", "neg.idx"}) std::remove(tmp_path(n).c_str());
}

TEST_CASE("idx: clear errors for missing, bad and truncated files") {
  std::string missing = tmp_path("missing.idx");
  std::string msg = error_of([&] { read_idx(missing); });
  CHECK(msg.find(missing) != std::string::npos);
  CHECK(msg.find("cannot open") != std::string::npos);

  std::string path = tmp_path("bad.idx");
  {
    std::ofstream f(path, std::ios::binary);
    f << "PK\x03\x04 not an idx";
  }
  msg = error_of([&] { read_idx(path); });
  CHECK(msg.find("bad magic") != std::string::npos);
  CHECK(msg.find(path) != std::string::npos);

  // Truncated at every point of a small plain file, and at several points of a gzip one.
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  for (bool gz : {false, true}) {
    write_idx(path, t, IdxType::I16, gz);
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      INFO("gzip ", gz, " cut ", cut);
      {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(bytes.data(), static_cast<std::streamsize>(cut));
      }
      CHECK(error_of([&] { read_idx(path); }) != "");
    }
  }
  // Extra bytes after the data are an error too.
  write_idx(path, t, IdxType::U8, false);
  {
    std::ofstream f(path, std::ios::binary | std::ios::app);
    f << "x";
  }
  CHECK(error_of([&] { read_idx(path); }).find("unexpected bytes") != std::string::npos);
  // A header claiming a huge tensor fails cleanly without allocating it.
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const char h[] = {0, 0, 8, 3, '\x7f', '\xff', '\xff', '\xff', '\x7f', '\xff', '\xff', '\xff', 0, 0, 0, 9, 1, 2};
    f.write(h, sizeof(h));
  }
  CHECK(error_of([&] { read_idx(path); }) != "");
  std::remove(path.c_str());
}

TEST_CASE("data: TensorDataset, collate and get_batch") {
  auto ds = counting_dataset(5);
  CHECK(ds->size() == 5);
  Example e = ds->get(3);
  CHECK(e.at("x").shape() == Shape{2, 3});
  CHECK(e.at("x").to_vector()[0] == doctest::Approx(3.0));
  CHECK(e.at("label").item() == 3);
  Example b = ds->get_batch({4, 0, 2});
  CHECK(b.at("x").shape() == Shape{3, 2, 3});
  CHECK(b.at("label").to_vector() == std::vector<double>{4, 0, 2});
  Example c = collate({ds->get(4), ds->get(0), ds->get(2)});
  CHECK(c.at("x").to_vector() == b.at("x").to_vector());
  CHECK(c.at("label").to_vector() == b.at("label").to_vector());
  CHECK_THROWS_AS(ds->get(5), Error);
  CHECK_THROWS_AS(ds->get_batch({0, -1}), Error);
  CHECK(error_of([&] { collate({ds->get(0), {{"x", Tensor::zeros({3, 2})}, {"label", Tensor::scalar(0, DType::I64)}}}); })
            .find("\"x\" of example 1") != std::string::npos);
  CHECK(error_of([&] { TensorDataset({{"a", Tensor::zeros({3})}, {"b", Tensor::zeros({4})}}); }).find("rows") !=
        std::string::npos);
  // The default get_batch goes through get() and collate().
  SlowDataset slow;
  Example s = slow.get_batch({1, 7});
  CHECK(s.at("v").to_vector() == std::vector<double>{1, 1, 7, 7});
  CHECK(s.at("label").shape() == Shape{2});
}

TEST_CASE("data: DataLoader order depends only on (seed, epoch)") {
  auto ds = counting_dataset(103);
  DataLoaderOptions o;
  o.batch_size = 10;
  o.seed = 5;
  DataLoader a(ds, o), b(ds, o);
  CHECK(a.batches_per_epoch() == 11);
  auto ea0 = epoch_labels(a), eb0 = epoch_labels(b);
  CHECK(ea0 == eb0);
  CHECK(ea0.size() == 11);
  CHECK(ea0.back().size() == 3);
  CHECK(a.position() == LoaderPosition{1, 0});
  // Every example once per epoch.
  std::vector<int64_t> all;
  for (auto& v : ea0) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 103; ++i) CHECK(all[i] == i);
  // The next epoch has another order; another seed another order.
  auto ea1 = epoch_labels(a);
  CHECK(ea1 != ea0);
  o.seed = 6;
  DataLoader c(ds, o);
  CHECK(epoch_labels(c) != ea0);
  // Shuffle off: the identity.
  o.shuffle = false;
  o.drop_last = true;
  DataLoader d(ds, o);
  auto ed = epoch_labels(d);
  CHECK(ed.size() == 10);
  CHECK(ed[0] == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("data: DataLoader batches do not depend on worker or compute threads") {
  auto ds = counting_dataset(257);
  std::vector<std::vector<int64_t>> ref;
  std::vector<double> ref_x;
  int before = num_threads();
  for (int compute : {1, 2}) {
    set_num_threads(compute);
    for (int workers : {0, 1, 2, 4}) {
      for (int prefetch : {1, 3}) {
        DataLoaderOptions o;
        o.batch_size = 16;
        o.seed = 42;
        o.num_workers = workers;
        o.prefetch = prefetch;
        DataLoader dl(ds, o);
        dl.set_position({2, 0});  // epoch 2
        std::vector<std::vector<int64_t>> labels;
        std::vector<double> xs;
        Example b;
        while (dl.next(b)) {
          labels.push_back(b.at("label").to_vector_as<int64_t>());
          auto x = b.at("x").to_vector();
          xs.insert(xs.end(), x.begin(), x.end());
          CHECK(b.at("x").shape()[1] == 2);
        }
        INFO("compute ", compute, " workers ", workers, " prefetch ", prefetch);
        if (ref.empty()) {
          ref = labels;
          ref_x = xs;
        }
        CHECK(labels == ref);
        CHECK(xs == ref_x);
      }
    }
  }
  set_num_threads(before);
}

TEST_CASE("data: DataLoader resumes exactly from a position") {
  auto ds = counting_dataset(50);
  DataLoaderOptions o;
  o.batch_size = 8;
  o.seed = 9;
  o.num_workers = 2;
  // Reference: three epochs in one go, by step.
  DataLoader ref(ds, o);
  std::vector<std::vector<int64_t>> all;
  std::vector<LoaderPosition> pos;
  for (int s = 0; s < 3 * 7; ++s) {
    pos.push_back(ref.position());
    all.push_back(ref.next_batch().at("label").to_vector_as<int64_t>());
  }
  for (int start : {0, 3, 6, 7, 12, 20}) {
    for (int workers : {0, 3}) {
      o.num_workers = workers;
      DataLoader dl(ds, o);
      // Consume a few batches first, so the resumed loader has stale prefetched state.
      dl.next_batch();
      dl.next_batch();
      dl.set_position(pos[start]);
      INFO("resume at step ", start, " workers ", workers);
      for (int s = start; s < 3 * 7; ++s) CHECK(dl.next_batch().at("label").to_vector_as<int64_t>() == all[s]);
    }
  }
  // A position at the end of an epoch is valid; beyond it is not.
  DataLoader dl(ds, o);
  dl.set_position({1, 7});
  Example b;
  CHECK(!dl.next(b));
  CHECK(dl.position() == LoaderPosition{2, 0});
  CHECK_THROWS_AS(dl.set_position({0, 8}), Error);
}

TEST_CASE("data: DataLoader surfaces dataset errors") {
  class Failing : public Dataset {
   public:
    int64_t size() const override { return 20; }
    Example get(int64_t i) const override {
      MEMEL_CHECK(i != 13, "[Failing] example 13 is broken");
      return {{"v", Tensor::zeros({1})}};
    }
  };
  DataLoaderOptions o;
  o.batch_size = 4;
  o.shuffle = false;
  o.num_workers = 2;
  DataLoader dl(std::make_shared<Failing>(), o);
  Example b;
  CHECK(dl.next(b));
  CHECK(dl.next(b));
  CHECK(dl.next(b));
  CHECK(error_of([&] { dl.next(b); }).find("example 13 is broken") != std::string::npos);
  CHECK(dl.next(b));  // batch 4 is fine
  CHECK(!dl.next(b));
}

TEST_CASE("data: Fashion-MNIST loads with the right shapes when installed") {
  struct stat st {};
  std::string f = std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz";
  if (::stat(f.c_str(), &st) != 0) {
    MESSAGE("skipped: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  FashionMnist test = load_fashion_mnist(kFashionMnistDir, false);
  CHECK(test.images.shape() == Shape{10000, 1, 28, 28});
  CHECK(test.images.dtype() == DType::F32);
  CHECK(test.labels.shape() == Shape{10000});
  CHECK(test.labels.dtype() == DType::I64);
  const float* p = test.images.data<float>();
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < test.images.numel(); ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  CHECK(lo == 0.0f);
  CHECK(hi == 1.0f);
  // Known first test labels of Fashion-MNIST: 9 (ankle boot), 2 (pullover), 1, 1, 6.
  auto l = test.labels.to_vector_as<int64_t>();
  CHECK(std::vector<int64_t>(l.begin(), l.begin() + 5) == std::vector<int64_t>{9, 2, 1, 1, 6});
  std::vector<int64_t> counts(10, 0);
  for (int64_t v : l) counts[v]++;
  for (int64_t c : counts) CHECK(c == 1000);
  auto ds = fashion_mnist_dataset(kFashionMnistDir, true);
  CHECK(ds->size() == 60000);
  CHECK(ds->get(0).at("image").shape() == Shape{1, 28, 28});
}

TEST_CASE("data: Fashion-MNIST missing files give an actionable error") {
  std::string msg = error_of([] { load_fashion_mnist(tmp_path("no-such-dir"), true); });
  CHECK(msg.find("train-images-idx3-ubyte") != std::string::npos);
  CHECK(msg.find("apt-get install dataset-fashion-mnist") != std::string::npos);
}
