#include "memel/inspect.h"

// Debian's header defines static helpers this file does not use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_easy_font.h>
#pragma GCC diagnostic pop
#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace memel {

namespace {

std::string fmt(double v, int prec = 3) {
  char buf[64];
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3))
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// A count (inhibitions) as an integer; values a cast cannot hold (NaN, inf, huge) as fmt.
std::string count_str(double v) {
  if (std::isfinite(v) && std::abs(v) < 9e15) return std::to_string(static_cast<long long>(v));
  return fmt(v);
}

std::string pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }

std::string index_str(const std::vector<int64_t>& idx) {
  std::string s = "(";
  for (size_t i = 0; i < idx.size(); ++i) s += (i ? ", " : "") + std::to_string(idx[i]);
  return s + ")";
}

}  // namespace

std::string format_dump_summary(const MemelDump& d, double tau) {
  std::ostringstream os;
  os << "step " << d.step << ", " << d.layers.size() << " memel layer(s)\n";
  auto neurons = [](const LayerDump& l) { return std::to_string(l.ms_mean.numel()) + " " + shape_str(l.neuron_shape); };
  size_t w = 5, wn = 14;
  for (auto& l : d.layers) {
    w = std::max(w, l.name.size());
    wn = std::max(wn, neurons(l).size() + 2);
  }
  os << pad("layer", w) << "  " << pad("neurons", wn) << pad("batches", 9) << pad("mean MS", 11)
     << pad("MS>" + fmt(tau, 0), 9) << pad("inhibited", 11) << "top neuron (mean MS)\n";
  for (auto& l : d.layers) {
    std::string top = l.top.empty() ? "-" : index_str(l.top[0].index) + " (" + fmt(l.top[0].mean_ms) + ")";
    os << pad(l.name, w) << "  " << pad(neurons(l), wn)
       << pad(std::to_string(l.batches), 9) << pad(fmt(l.mean_ms), 11) << pad(fmt(100 * l.share_above(tau), 1) + "%", 9)
       << pad(count_str(l.total_inhibited), 11) << top << "\n";
  }
  return os.str();
}

std::string format_dump_top(const MemelDump& d, int64_t n) {
  struct Row {
    const LayerDump* layer;
    int64_t flat;
    double ms, inh;
  };
  std::vector<Row> rows;
  for (auto& l : d.layers) {
    std::vector<double> m = l.ms_mean.to_vector(), inh = l.inhibited.to_vector();
    for (size_t i = 0; i < m.size(); ++i) rows.push_back({&l, int64_t(i), m[i], inh[i]});
  }
  const size_t k = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(n, 0)), rows.size());
  std::partial_sort(rows.begin(), rows.begin() + k, rows.end(), [](const Row& a, const Row& b) {
    const double ka = ms_sort_key(a.ms), kb = ms_sort_key(b.ms);
    return ka > kb || (ka == kb && (a.layer < b.layer || (a.layer == b.layer && a.flat < b.flat)));
  });
  std::ostringstream os;
  os << "rank  layer  neuron  mean MS  inhibited  running mean  running var\n";
  for (size_t r = 0; r < k; ++r) {
    const Row& row = rows[r];
    std::vector<int64_t> idx(row.layer->neuron_shape.size());
    int64_t f = row.flat;
    for (int64_t dd = static_cast<int64_t>(idx.size()) - 1; dd >= 0; --dd) {
      idx[dd] = f % row.layer->neuron_shape[dd];
      f /= row.layer->neuron_shape[dd];
    }
    os << (r + 1) << "  " << row.layer->name << "  " << index_str(idx) << "  " << fmt(row.ms) << "  " << count_str(row.inh)
       << "  " << fmt(row.layer->mean.to_vector()[row.flat]) << "  " << fmt(row.layer->var.to_vector()[row.flat]) << "\n";
  }
  return os.str();
}

std::string dump_mismatch(const MemelDump& a, const MemelDump& b, const std::string& na, const std::string& nb) {
  std::vector<std::string> found;
  for (auto& la : a.layers) {
    const LayerDump* lb = b.find(la.name);
    if (!lb)
      found.push_back("layer '" + la.name + "' only in " + na);
    else if (lb->neuron_shape != la.neuron_shape)
      found.push_back("layer '" + la.name + "' has " + std::to_string(shape_numel(la.neuron_shape)) + " neurons " +
                      shape_str(la.neuron_shape) + " in " + na + " but " + std::to_string(shape_numel(lb->neuron_shape)) +
                      " " + shape_str(lb->neuron_shape) + " in " + nb);
  }
  for (auto& lb : b.layers)
    if (!a.find(lb.name)) found.push_back("layer '" + lb.name + "' only in " + nb);
  if (a.layers.empty() && b.layers.empty()) found.push_back("neither dump has a memel layer");
  std::string r;
  const size_t shown = std::min<size_t>(found.size(), 6);
  for (size_t i = 0; i < shown; ++i) r += (i ? "; " : "") + found[i];
  if (found.size() > shown) r += "; and " + std::to_string(found.size() - shown) + " more";
  return r;
}

std::string format_dump_diff(const MemelDump& a, const MemelDump& b, double tau, const std::string& na,
                             const std::string& nb) {
  const std::string mismatch = dump_mismatch(a, b, na, nb);
  MEMEL_CHECK(mismatch.empty(), "[memel-inspect] diff: ", na, " and ", nb,
              " do not hold the same memel layers (dumps of different models or memel placements?): ", mismatch);
  std::ostringstream os;
  os << "comparing " << na << " (step " << a.step << ") with " << nb << " (step " << b.step << ")\n";
  size_t w = 5;
  for (auto& l : a.layers) w = std::max(w, l.name.size());
  os << pad("layer", w) << "  " << pad("mean MS " + na, 14) << pad("mean MS " + nb, 14) << pad("change", 10)
     << pad("MS>" + fmt(tau, 0) + " " + na, 12) << pad("MS>" + fmt(tau, 0) + " " + nb, 12) << "change\n";
  int fell = 0, compared = 0;
  for (auto& la : a.layers) {
    const LayerDump* lb = b.find(la.name);
    if (!lb) {
      os << pad(la.name, w) << "  (only in " << na << ")\n";
      continue;
    }
    ++compared;
    const double ch = la.mean_ms != 0 ? (lb->mean_ms - la.mean_ms) / la.mean_ms : 0.0;
    const double sa = la.share_above(tau), sb = lb->share_above(tau);
    if (lb->mean_ms < la.mean_ms) ++fell;
    os << pad(la.name, w) << "  " << pad(fmt(la.mean_ms), 14) << pad(fmt(lb->mean_ms), 14)
       << pad((ch >= 0 ? "+" : "") + fmt(100 * ch, 1) + "%", 10) << pad(fmt(100 * sa, 1) + "%", 12)
       << pad(fmt(100 * sb, 1) + "%", 12) << (sb - sa >= 0 ? "+" : "") << fmt(100 * (sb - sa), 1) << " pts\n";
  }
  for (auto& lb : b.layers)
    if (!a.find(lb.name)) os << pad(lb.name, w) << "  (only in " << nb << ")\n";
  os << "monosemanticity (mean MS) fell in " << fell << " of " << compared << " layer(s) from " << na << " to " << nb
     << "\n";
  return os.str();
}

// --- a small rasteriser -----------------------------------------------------------------

namespace {

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(size_t(w_) * h_ * 3, 255) {}
  void set(int x, int y, uint32_t c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &px[(size_t(y) * w + x) * 3];
    p[0] = uint8_t(c >> 16);
    p[1] = uint8_t(c >> 8);
    p[2] = uint8_t(c);
  }
  void rect(int x0, int y0, int x1, int y1, uint32_t c) {
    for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
      for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) set(x, y, c);
  }
  void hline(int x0, int x1, int y, uint32_t c) { rect(x0, y, x1, y, c); }
  void vline(int x, int y0, int y1, uint32_t c) { rect(x, y0, x, y1, c); }
  // Text with stb_easy_font quads, scaled by an integer factor.
  void text(int x, int y, const std::string& s, uint32_t c, int scale = 1) {
    static char buf[200000];
    std::string str = s;
    int quads = stb_easy_font_print(0, 0, &str[0], nullptr, buf, sizeof buf);
    const float* v = reinterpret_cast<const float*>(buf);
    for (int q = 0; q < quads; ++q) {
      // 4 vertices of 16 bytes (x, y, z, color)
      const float* a = v + q * 16;
      const int qx0 = int(a[0]), qy0 = int(a[1]), qx1 = int(a[8]), qy1 = int(a[9]);
      rect(x + qx0 * scale, y + qy0 * scale, x + qx1 * scale - 1, y + qy1 * scale - 1, c);
    }
  }
  int text_width(const std::string& s, int scale = 1) {
    std::string str = s;
    return stb_easy_font_width(&str[0]) * scale;
  }
};

}  // namespace

void plot_dump_png(const MemelDump& d, const std::string& path, const MemelDump* other) {
  MEMEL_CHECK(!d.layers.empty(), "[memel-inspect] the dump has no memel layers to plot");
  const int cols = d.layers.size() > 1 ? 2 : 1;
  const int rows = int((d.layers.size() + cols - 1) / cols);
  const int pw = 640, ph = 320;  // panel size
  Canvas cv(cols * pw, rows * ph + 40);
  const uint32_t black = 0x000000, grey = 0xDDDDDD, bar = 0x3B75AF, outline = 0xE4572E;
  std::string title = "MEmeL statistics: histogram of the Monosemantic Scale per layer (step " + std::to_string(d.step) + ")";
  const int tscale = cv.text_width(title, 2) + 20 <= cv.w ? 2 : 1;
  cv.text((cv.w - cv.text_width(title, tscale)) / 2, 10, title, black, tscale);
  for (size_t li = 0; li < d.layers.size(); ++li) {
    const LayerDump& l = d.layers[li];
    const int ox = int(li % cols) * pw, oy = 40 + int(li / cols) * ph;
    const int x0 = ox + 70, x1 = ox + pw - 20, y0 = oy + 40, y1 = oy + ph - 50;  // plot area
    std::vector<double> hist = l.ms_hist.to_vector();
    std::vector<double> hist_b;
    const LayerDump* lb = other ? other->find(l.name) : nullptr;
    if (lb && lb->ms_hist.numel() == l.ms_hist.numel()) hist_b = lb->ms_hist.to_vector();
    auto normalise = [](std::vector<double>& h) {
      for (double& v : h)
        if (!std::isfinite(v) || v < 0) v = 0;  // NaN / inf / negative counts draw nothing
      double s = 0;
      for (double v : h) s += v;
      if (s > 0)
        for (double& v : h) v /= s;
    };
    normalise(hist);
    normalise(hist_b);
    double ymax = 1e-9;
    for (double v : hist) ymax = std::max(ymax, v);
    for (double v : hist_b) ymax = std::max(ymax, v);
    ymax = std::ceil(ymax * 10.0) / 10.0;
    std::string t = l.name + "  (" + std::to_string(l.ms_mean.numel()) + " neurons, mean MS " + fmt(l.mean_ms) + ")";
    cv.text(x0, oy + 12, t, black, 2);
    // Grid and axes.
    for (int k = 0; k <= 4; ++k) {
      const int y = y1 - int((y1 - y0) * k / 4.0);
      cv.hline(x0, x1, y, grey);
      std::string lab = fmt(ymax * k / 4.0, 2);
      cv.text(x0 - 8 - cv.text_width(lab), y - 3, lab, black);
    }
    cv.vline(x0, y0, y1, black);
    cv.hline(x0, x1, y1, black);
    const int nb = int(hist.size());
    const double bw = double(x1 - x0) / nb;
    for (int b = 0; b < nb; ++b) {
      const int bx0 = x0 + int(b * bw) + 1, bx1 = x0 + int((b + 1) * bw) - 1;
      const int top = y1 - int((y1 - y0) * hist[b] / ymax);
      if (hist[b] > 0) cv.rect(bx0, top, bx1, y1 - 1, bar);
      if (!hist_b.empty() && hist_b[b] > 0) {
        const int tb = y1 - int((y1 - y0) * hist_b[b] / ymax);
        cv.hline(bx0, bx1, tb, outline);
        cv.hline(bx0, bx1, tb + 1, outline);
      }
    }
    // x ticks at every other decade; inner bins 1..nb-2 cover [edges.front(), edges.back()).
    const std::vector<double>& e = l.hist_edges;
    if (e.size() >= 2 && e.front() > 0 && e.back() > e.front() && std::isfinite(e.back())) {
      const double lo = std::log10(e.front()), hi = std::log10(e.back());
      for (int dec = int(std::ceil(lo)); dec <= int(std::floor(hi)); ++dec) {
        if ((dec - int(std::ceil(lo))) % 2 != 0) continue;
        const int x = x0 + int(bw * (1 + (dec - lo) / (hi - lo) * (nb - 2)));
        cv.vline(x, y1, y1 + 4, black);
        std::string lab = "1e" + std::to_string(dec);
        cv.text(x - cv.text_width(lab) / 2, y1 + 8, lab, black);
      }
    }
    std::string xl = "Monosemantic Scale (log scale; first/last bars: below/above the range)";
    cv.text(x0 + (x1 - x0 - cv.text_width(xl)) / 2, y1 + 22, xl, black);
    std::string yl = "share";
    cv.text(ox + 8, y0 - 14, yl, black);
    if (!hist_b.empty()) cv.text(x1 - 150, y0 - 14, "bars: this dump, lines: other", outline);
  }
  MEMEL_CHECK(stbi_write_png(path.c_str(), cv.w, cv.h, 3, cv.px.data(), cv.w * 3) != 0, "[memel-inspect] cannot write ",
              path);
}

}  // namespace memel
