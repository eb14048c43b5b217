/* heatmap.c — attention heatmaps over slide thumbnails and top-tile strips (see ts_heatmap.h).
 *
 * Design: everything is plain C on small buffers (a thumbnail of ~1024^2 px and a few hundred
 * tiles of 128^2 px); libvips only encodes the PNGs. Reading uses ts_slide_read_rgb (OpenSlide,
 * glass composited over white) from the coarsest level at least as fine as the target, in bands
 * of rows, area-averaged with fractional weights (a destination pixel is the mean of the source
 * area it covers), so a thumbnail of a 100k-px slide with only level 0 stays within ~32 MiB.
 *
 * Percentiles follow CLAM's to_percentiles (scipy.stats.rankdata, method 'average'), rescaled to
 * [0, 1]; colours are matplotlib's viridis table, copied below.
 */
#include "ts_heatmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "ts_io.h"

/* viridis, 256 entries of sRGB floats in 0..1: matplotlib's lib/matplotlib/_cm_listed.py
 * (_viridis_data), identical to colormaps.py of the original release (github.com/BIDS/colormap,
 * by Nathaniel J. Smith, Stefan van der Walt and Eric Firing; CC0 / public domain). */
static const float viridis[256][3] = {
    {0.267004f, 0.004874f, 0.329415f},
    {0.268510f, 0.009605f, 0.335427f},
    {0.269944f, 0.014625f, 0.341379f},
    {0.271305f, 0.019942f, 0.347269f},
    {0.272594f, 0.025563f, 0.353093f},
    {0.273809f, 0.031497f, 0.358853f},
    {0.274952f, 0.037752f, 0.364543f},
    {0.276022f, 0.044167f, 0.370164f},
    {0.277018f, 0.050344f, 0.375715f},
    {0.277941f, 0.056324f, 0.381191f},
    {0.278791f, 0.062145f, 0.386592f},
    {0.279566f, 0.067836f, 0.391917f},
    {0.280267f, 0.073417f, 0.397163f},
    {0.280894f, 0.078907f, 0.402329f},
    {0.281446f, 0.084320f, 0.407414f},
    {0.281924f, 0.089666f, 0.412415f},
    {0.282327f, 0.094955f, 0.417331f},
    {0.282656f, 0.100196f, 0.422160f},
    {0.282910f, 0.105393f, 0.426902f},
    {0.283091f, 0.110553f, 0.431554f},
    {0.283197f, 0.115680f, 0.436115f},
    {0.283229f, 0.120777f, 0.440584f},
    {0.283187f, 0.125848f, 0.444960f},
    {0.283072f, 0.130895f, 0.449241f},
    {0.282884f, 0.135920f, 0.453427f},
    {0.282623f, 0.140926f, 0.457517f},
    {0.282290f, 0.145912f, 0.461510f},
    {0.281887f, 0.150881f, 0.465405f},
    {0.281412f, 0.155834f, 0.469201f},
    {0.280868f, 0.160771f, 0.472899f},
    {0.280255f, 0.165693f, 0.476498f},
    {0.279574f, 0.170599f, 0.479997f},
    {0.278826f, 0.175490f, 0.483397f},
    {0.278012f, 0.180367f, 0.486697f},
    {0.277134f, 0.185228f, 0.489898f},
    {0.276194f, 0.190074f, 0.493001f},
    {0.275191f, 0.194905f, 0.496005f},
    {0.274128f, 0.199721f, 0.498911f},
    {0.273006f, 0.204520f, 0.501721f},
    {0.271828f, 0.209303f, 0.504434f},
    {0.270595f, 0.214069f, 0.507052f},
    {0.269308f, 0.218818f, 0.509577f},
    {0.267968f, 0.223549f, 0.512008f},
    {0.266580f, 0.228262f, 0.514349f},
    {0.265145f, 0.232956f, 0.516599f},
    {0.263663f, 0.237631f, 0.518762f},
    {0.262138f, 0.242286f, 0.520837f},
    {0.260571f, 0.246922f, 0.522828f},
    {0.258965f, 0.251537f, 0.524736f},
    {0.257322f, 0.256130f, 0.526563f},
    {0.255645f, 0.260703f, 0.528312f},
    {0.253935f, 0.265254f, 0.529983f},
    {0.252194f, 0.269783f, 0.531579f},
    {0.250425f, 0.274290f, 0.533103f},
    {0.248629f, 0.278775f, 0.534556f},
    {0.246811f, 0.283237f, 0.535941f},
    {0.244972f, 0.287675f, 0.537260f},
    {0.243113f, 0.292092f, 0.538516f},
    {0.241237f, 0.296485f, 0.539709f},
    {0.239346f, 0.300855f, 0.540844f},
    {0.237441f, 0.305202f, 0.541921f},
    {0.235526f, 0.309527f, 0.542944f},
    {0.233603f, 0.313828f, 0.543914f},
    {0.231674f, 0.318106f, 0.544834f},
    {0.229739f, 0.322361f, 0.545706f},
    {0.227802f, 0.326594f, 0.546532f},
    {0.225863f, 0.330805f, 0.547314f},
    {0.223925f, 0.334994f, 0.548053f},
    {0.221989f, 0.339161f, 0.548752f},
    {0.220057f, 0.343307f, 0.549413f},
    {0.218130f, 0.347432f, 0.550038f},
    {0.216210f, 0.351535f, 0.550627f},
    {0.214298f, 0.355619f, 0.551184f},
    {0.212395f, 0.359683f, 0.551710f},
    {0.210503f, 0.363727f, 0.552206f},
    {0.208623f, 0.367752f, 0.552675f},
    {0.206756f, 0.371758f, 0.553117f},
    {0.204903f, 0.375746f, 0.553533f},
    {0.203063f, 0.379716f, 0.553925f},
    {0.201239f, 0.383670f, 0.554294f},
    {0.199430f, 0.387607f, 0.554642f},
    {0.197636f, 0.391528f, 0.554969f},
    {0.195860f, 0.395433f, 0.555276f},
    {0.194100f, 0.399323f, 0.555565f},
    {0.192357f, 0.403199f, 0.555836f},
    {0.190631f, 0.407061f, 0.556089f},
    {0.188923f, 0.410910f, 0.556326f},
    {0.187231f, 0.414746f, 0.556547f},
    {0.185556f, 0.418570f, 0.556753f},
    {0.183898f, 0.422383f, 0.556944f},
    {0.182256f, 0.426184f, 0.557120f},
    {0.180629f, 0.429975f, 0.557282f},
    {0.179019f, 0.433756f, 0.557430f},
    {0.177423f, 0.437527f, 0.557565f},
    {0.175841f, 0.441290f, 0.557685f},
    {0.174274f, 0.445044f, 0.557792f},
    {0.172719f, 0.448791f, 0.557885f},
    {0.171176f, 0.452530f, 0.557965f},
    {0.169646f, 0.456262f, 0.558030f},
    {0.168126f, 0.459988f, 0.558082f},
    {0.166617f, 0.463708f, 0.558119f},
    {0.165117f, 0.467423f, 0.558141f},
    {0.163625f, 0.471133f, 0.558148f},
    {0.162142f, 0.474838f, 0.558140f},
    {0.160665f, 0.478540f, 0.558115f},
    {0.159194f, 0.482237f, 0.558073f},
    {0.157729f, 0.485932f, 0.558013f},
    {0.156270f, 0.489624f, 0.557936f},
    {0.154815f, 0.493313f, 0.557840f},
    {0.153364f, 0.497000f, 0.557724f},
    {0.151918f, 0.500685f, 0.557587f},
    {0.150476f, 0.504369f, 0.557430f},
    {0.149039f, 0.508051f, 0.557250f},
    {0.147607f, 0.511733f, 0.557049f},
    {0.146180f, 0.515413f, 0.556823f},
    {0.144759f, 0.519093f, 0.556572f},
    {0.143343f, 0.522773f, 0.556295f},
    {0.141935f, 0.526453f, 0.555991f},
    {0.140536f, 0.530132f, 0.555659f},
    {0.139147f, 0.533812f, 0.555298f},
    {0.137770f, 0.537492f, 0.554906f},
    {0.136408f, 0.541173f, 0.554483f},
    {0.135066f, 0.544853f, 0.554029f},
    {0.133743f, 0.548535f, 0.553541f},
    {0.132444f, 0.552216f, 0.553018f},
    {0.131172f, 0.555899f, 0.552459f},
    {0.129933f, 0.559582f, 0.551864f},
    {0.128729f, 0.563265f, 0.551229f},
    {0.127568f, 0.566949f, 0.550556f},
    {0.126453f, 0.570633f, 0.549841f},
    {0.125394f, 0.574318f, 0.549086f},
    {0.124395f, 0.578002f, 0.548287f},
    {0.123463f, 0.581687f, 0.547445f},
    {0.122606f, 0.585371f, 0.546557f},
    {0.121831f, 0.589055f, 0.545623f},
    {0.121148f, 0.592739f, 0.544641f},
    {0.120565f, 0.596422f, 0.543611f},
    {0.120092f, 0.600104f, 0.542530f},
    {0.119738f, 0.603785f, 0.541400f},
    {0.119512f, 0.607464f, 0.540218f},
    {0.119423f, 0.611141f, 0.538982f},
    {0.119483f, 0.614817f, 0.537692f},
    {0.119699f, 0.618490f, 0.536347f},
    {0.120081f, 0.622161f, 0.534946f},
    {0.120638f, 0.625828f, 0.533488f},
    {0.121380f, 0.629492f, 0.531973f},
    {0.122312f, 0.633153f, 0.530398f},
    {0.123444f, 0.636809f, 0.528763f},
    {0.124780f, 0.640461f, 0.527068f},
    {0.126326f, 0.644107f, 0.525311f},
    {0.128087f, 0.647749f, 0.523491f},
    {0.130067f, 0.651384f, 0.521608f},
    {0.132268f, 0.655014f, 0.519661f},
    {0.134692f, 0.658636f, 0.517649f},
    {0.137339f, 0.662252f, 0.515571f},
    {0.140210f, 0.665859f, 0.513427f},
    {0.143303f, 0.669459f, 0.511215f},
    {0.146616f, 0.673050f, 0.508936f},
    {0.150148f, 0.676631f, 0.506589f},
    {0.153894f, 0.680203f, 0.504172f},
    {0.157851f, 0.683765f, 0.501686f},
    {0.162016f, 0.687316f, 0.499129f},
    {0.166383f, 0.690856f, 0.496502f},
    {0.170948f, 0.694384f, 0.493803f},
    {0.175707f, 0.697900f, 0.491033f},
    {0.180653f, 0.701402f, 0.488189f},
    {0.185783f, 0.704891f, 0.485273f},
    {0.191090f, 0.708366f, 0.482284f},
    {0.196571f, 0.711827f, 0.479221f},
    {0.202219f, 0.715272f, 0.476084f},
    {0.208030f, 0.718701f, 0.472873f},
    {0.214000f, 0.722114f, 0.469588f},
    {0.220124f, 0.725509f, 0.466226f},
    {0.226397f, 0.728888f, 0.462789f},
    {0.232815f, 0.732247f, 0.459277f},
    {0.239374f, 0.735588f, 0.455688f},
    {0.246070f, 0.738910f, 0.452024f},
    {0.252899f, 0.742211f, 0.448284f},
    {0.259857f, 0.745492f, 0.444467f},
    {0.266941f, 0.748751f, 0.440573f},
    {0.274149f, 0.751988f, 0.436601f},
    {0.281477f, 0.755203f, 0.432552f},
    {0.288921f, 0.758394f, 0.428426f},
    {0.296479f, 0.761561f, 0.424223f},
    {0.304148f, 0.764704f, 0.419943f},
    {0.311925f, 0.767822f, 0.415586f},
    {0.319809f, 0.770914f, 0.411152f},
    {0.327796f, 0.773980f, 0.406640f},
    {0.335885f, 0.777018f, 0.402049f},
    {0.344074f, 0.780029f, 0.397381f},
    {0.352360f, 0.783011f, 0.392636f},
    {0.360741f, 0.785964f, 0.387814f},
    {0.369214f, 0.788888f, 0.382914f},
    {0.377779f, 0.791781f, 0.377939f},
    {0.386433f, 0.794644f, 0.372886f},
    {0.395174f, 0.797475f, 0.367757f},
    {0.404001f, 0.800275f, 0.362552f},
    {0.412913f, 0.803041f, 0.357269f},
    {0.421908f, 0.805774f, 0.351910f},
    {0.430983f, 0.808473f, 0.346476f},
    {0.440137f, 0.811138f, 0.340967f},
    {0.449368f, 0.813768f, 0.335384f},
    {0.458674f, 0.816363f, 0.329727f},
    {0.468053f, 0.818921f, 0.323998f},
    {0.477504f, 0.821444f, 0.318195f},
    {0.487026f, 0.823929f, 0.312321f},
    {0.496615f, 0.826376f, 0.306377f},
    {0.506271f, 0.828786f, 0.300362f},
    {0.515992f, 0.831158f, 0.294279f},
    {0.525776f, 0.833491f, 0.288127f},
    {0.535621f, 0.835785f, 0.281908f},
    {0.545524f, 0.838039f, 0.275626f},
    {0.555484f, 0.840254f, 0.269281f},
    {0.565498f, 0.842430f, 0.262877f},
    {0.575563f, 0.844566f, 0.256415f},
    {0.585678f, 0.846661f, 0.249897f},
    {0.595839f, 0.848717f, 0.243329f},
    {0.606045f, 0.850733f, 0.236712f},
    {0.616293f, 0.852709f, 0.230052f},
    {0.626579f, 0.854645f, 0.223353f},
    {0.636902f, 0.856542f, 0.216620f},
    {0.647257f, 0.858400f, 0.209861f},
    {0.657642f, 0.860219f, 0.203082f},
    {0.668054f, 0.861999f, 0.196293f},
    {0.678489f, 0.863742f, 0.189503f},
    {0.688944f, 0.865448f, 0.182725f},
    {0.699415f, 0.867117f, 0.175971f},
    {0.709898f, 0.868751f, 0.169257f},
    {0.720391f, 0.870350f, 0.162603f},
    {0.730889f, 0.871916f, 0.156029f},
    {0.741388f, 0.873449f, 0.149561f},
    {0.751884f, 0.874951f, 0.143228f},
    {0.762373f, 0.876424f, 0.137064f},
    {0.772852f, 0.877868f, 0.131109f},
    {0.783315f, 0.879285f, 0.125405f},
    {0.793760f, 0.880678f, 0.120005f},
    {0.804182f, 0.882046f, 0.114965f},
    {0.814576f, 0.883393f, 0.110347f},
    {0.824940f, 0.884720f, 0.106217f},
    {0.835270f, 0.886029f, 0.102646f},
    {0.845561f, 0.887322f, 0.099702f},
    {0.855810f, 0.888601f, 0.097452f},
    {0.866013f, 0.889868f, 0.095953f},
    {0.876168f, 0.891125f, 0.095250f},
    {0.886271f, 0.892374f, 0.095374f},
    {0.896320f, 0.893616f, 0.096335f},
    {0.906311f, 0.894855f, 0.098125f},
    {0.916242f, 0.896091f, 0.100717f},
    {0.926106f, 0.897330f, 0.104071f},
    {0.935904f, 0.898570f, 0.108131f},
    {0.945636f, 0.899815f, 0.112838f},
    {0.955300f, 0.901065f, 0.118128f},
    {0.964894f, 0.902323f, 0.123941f},
    {0.974417f, 0.903590f, 0.130215f},
    {0.983868f, 0.904867f, 0.136897f},
    {0.993248f, 0.906157f, 0.143936f},
};

void ts_heatmap_opts_default(ts_heatmap_opts *o) {
  o->max_px = 1024;
  o->alpha = 0.5;
  o->top_k = 8;
  o->strip_tile_px = 128;
  o->strip_gap_px = 4;
  o->png_level = 1;
  o->legend = true;
}

void ts_heatmap_viridis(double p, float rgb_out[3]) {
  if (!(p > 0.0)) p = 0.0; /* NaN too */
  if (p > 1.0) p = 1.0;
  int k = (int)(p * 256.0); /* matplotlib: xa = x * N, xa[xa == N] = N - 1, floor */
  if (k > 255) k = 255;
  memcpy(rgb_out, viridis[k], sizeof viridis[k]);
}

/* ---- scores ------------------------------------------------------------------------------ */

typedef struct scored {
  float v;
  int64_t i;
} scored;

static int cmp_scored(const void *pa, const void *pb) {
  const scored *a = pa, *b = pb;
  if (a->v < b->v) return -1;
  if (a->v > b->v) return 1;
  return (a->i > b->i) - (a->i < b->i);
}

static int check_scores(const float *scores, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(scores[i]))
      return ts_error_set(TS_EINPUT, "HEATMAP_BAD_SCORE",
                          "attention score %lld of %lld is %s (a model that diverged, or scores "
                          "not aligned with the tile coordinates)",
                          (long long)i, (long long)n, isnan(scores[i]) ? "NaN" : "infinite");
  return 0;
}

/* scores sorted ascending by (value, index); caller frees. */
static int sort_scores(const float *scores, int64_t n, scored **out) {
  *out = NULL;
  scored *a = malloc((size_t)n * sizeof *a);
  if (!a) return ts_error_set(TS_ENOMEM, "ENOMEM", "heatmap: %lld scores", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    a[i].v = scores[i];
    a[i].i = i;
  }
  qsort(a, (size_t)n, sizeof *a, cmp_scored);
  *out = a;
  return 0;
}

/* out[i] from the sorted copy (so out may alias the scores). */
static void percentiles_from_sorted(const scored *a, int64_t n, float *out) {
  if (n == 1) {
    out[a[0].i] = 1.0f;
    return;
  }
  for (int64_t g = 0; g < n;) {
    int64_t e = g + 1;
    while (e < n && a[e].v == a[g].v) e++;
    double p = ((double)g + (double)(e - 1)) / 2.0 / (double)(n - 1); /* mean 0-based rank */
    for (int64_t k = g; k < e; k++) out[a[k].i] = (float)p;
    g = e;
  }
}

int ts_heatmap_percentiles(const float *scores, int64_t n, float *out) {
  if (!scores || !out || n < 0) return ts_error_set(TS_EINVAL, "EINVAL", "ts_heatmap_percentiles: bad arguments");
  if (n == 0) return ts_error_set(TS_EINPUT, "HEATMAP_NO_TILES", "no tiles: no percentiles to compute");
  TS_CALL(check_scores(scores, n));
  scored *a = NULL;
  TS_CALL(sort_scores(scores, n, &a));
  percentiles_from_sorted(a, n, out);
  free(a);
  return 0;
}

/* ---- reading and area averaging ---------------------------------------------------------- */

static double overlap(double a0, double a1, double b0, double b1) {
  double lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
  return hi > lo ? hi - lo : 0.0;
}

/* Source index range and weights of destination index j: [j*f, (j+1)*f) over [0, len). */
static int64_t span(int j, double f, int64_t len, int64_t *k0_out) {
  int64_t k0 = (int64_t)floor(j * f), k1 = (int64_t)ceil((j + 1) * f);
  if (k1 > len) k1 = len;
  if (k0 > len - 1) k0 = len - 1; /* past the clipped edge: the last source pixel */
  if (k1 <= k0) k1 = k0 + 1;
  *k0_out = k0;
  return k1 - k0;
}

static double weight(int j, double f, int64_t k, int64_t n_span) {
  double w = overlap((double)k, (double)k + 1.0, j * f, (j + 1) * f);
  return (w <= 0.0 && n_span == 1) ? 1.0 : w;
}

#define BAND_BYTES ((size_t)32 << 20)

/* Area-average a region of `level` into dst (dw x dh RGB). The region's top-left level pixel is at
 * level-0 (x0, y0); destination pixel (i, j) is the mean of the level pixels [j*fx, (j+1)*fx) x
 * [i*fy, (i+1)*fy) of the region (fractional pixels weighted by their covered area). With
 * clip_w/clip_h > 0 the region is cut there (the slide edge: no glass beyond it enters a mean);
 * otherwise it is read as it comes (outside the scan reads as white, as OpenSlide returns it).
 * The level is read in bands of rows of at most ~BAND_BYTES. */
static int read_area(ts_slide *s, int level, int64_t x0, int64_t y0, double fx, double fy, int64_t clip_w,
                     int64_t clip_h, int dw, int dh, uint8_t *dst) {
  int rc = 0;
  double ds = ts_slide_level_downsample(s, level);
  int64_t sw = (int64_t)ceil(dw * fx - 1e-9), sh = (int64_t)ceil(dh * fy - 1e-9);
  if (clip_w > 0 && sw > clip_w) sw = clip_w;
  if (clip_h > 0 && sh > clip_h) sh = clip_h;
  if (sw < 1) sw = 1;
  if (sh < 1) sh = 1;
  if (sw > INT32_MAX / 4) return ts_error_set(TS_EINVAL, "HEATMAP_BAD_OPTION", "heatmap: level %d is %lld px wide", level, (long long)sw);
  int64_t *ck0 = malloc((size_t)dw * sizeof *ck0), *cn = malloc((size_t)dw * sizeof *cn);
  size_t row_bytes = (size_t)sw * 3;
  int nb = (int)(BAND_BYTES / (row_bytes * (fy > 1 ? fy : 1)));
  if (nb < 1) nb = 1;
  if (nb > dh) nb = dh;
  int64_t band_rows = (int64_t)ceil(nb * fy) + 2;
  uint8_t *band = malloc(row_bytes * (size_t)band_rows);
  float *hbuf = malloc((size_t)band_rows * dw * 3 * sizeof *hbuf);
  if (!ck0 || !cn || !band || !hbuf) TS_FAIL(TS_ENOMEM, "ENOMEM", "heatmap: band of %lld x %lld px", (long long)sw, (long long)band_rows);
  for (int j = 0; j < dw; j++) cn[j] = span(j, fx, sw, &ck0[j]);
  for (int i0 = 0; i0 < dh; i0 += nb) {
    int i1 = i0 + nb < dh ? i0 + nb : dh;
    int64_t r0 = (int64_t)floor(i0 * fy), r1 = (int64_t)ceil(i1 * fy);
    if (r1 > sh) r1 = sh;
    if (r0 > sh - 1) r0 = sh - 1;
    if (r1 <= r0) r1 = r0 + 1;
    int64_t nr = r1 - r0;
    TS_TRY(ts_slide_read_rgb(s, level, x0, y0 + llround((double)r0 * ds), (int)sw, (int)nr, band));
    for (int64_t r = 0; r < nr; r++) { /* horizontal pass */
      const uint8_t *src = band + (size_t)r * row_bytes;
      float *h = hbuf + (size_t)r * dw * 3;
      for (int j = 0; j < dw; j++) {
        double acc[3] = {0, 0, 0}, wsum = 0;
        for (int64_t k = ck0[j]; k < ck0[j] + cn[j]; k++) {
          double w = weight(j, fx, k, cn[j]);
          acc[0] += w * src[3 * k];
          acc[1] += w * src[3 * k + 1];
          acc[2] += w * src[3 * k + 2];
          wsum += w;
        }
        for (int c = 0; c < 3; c++) h[3 * j + c] = (float)(acc[c] / wsum);
      }
    }
    for (int i = i0; i < i1; i++) { /* vertical pass */
      int64_t k0;
      int64_t n_span = span(i, fy, sh, &k0);
      uint8_t *o = dst + (size_t)i * dw * 3;
      for (int j = 0; j < dw * 3; j++) {
        double acc = 0, wsum = 0;
        for (int64_t k = k0; k < k0 + n_span; k++) {
          if (k < r0 || k >= r1) continue;
          double w = weight(i, fy, k, n_span);
          acc += w * hbuf[(size_t)(k - r0) * dw * 3 + j];
          wsum += w;
        }
        double v = wsum > 0 ? acc / wsum : 255.0;
        o[j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
      }
    }
  }
out:
  free(ck0);
  free(cn);
  free(band);
  free(hbuf);
  return rc;
}

/* The coarsest level whose downsample is <= target (level-0 px per output px). */
static int level_for(const ts_slide *s, double target) {
  int best = 0;
  double best_ds = 1.0;
  for (int l = 0; l < ts_slide_level_count(s); l++) {
    double ds = ts_slide_level_downsample(s, l);
    if (ds > 0 && ds <= target * (1.0 + 1e-6) && ds > best_ds) {
      best = l;
      best_ds = ds;
    }
  }
  return best;
}

/* ---- drawing ----------------------------------------------------------------------------- */

static int check_opts(const ts_heatmap_opts *o, int64_t tile_l0) {
#define CHECK(cond, ...)                                                                        \
  if (!(cond)) return ts_error_set(TS_EINVAL, "HEATMAP_BAD_OPTION", __VA_ARGS__)
  CHECK(o->max_px >= 16 && o->max_px <= 16384, "max_px %d is not in 16..16384", o->max_px);
  CHECK(o->alpha >= 0.0 && o->alpha <= 1.0, "alpha %g is not in 0..1", o->alpha);
  CHECK(o->top_k >= 1 && o->top_k <= 1024, "top_k %d is not in 1..1024", o->top_k);
  CHECK(o->strip_tile_px >= 8 && o->strip_tile_px <= 2048, "strip_tile_px %d is not in 8..2048", o->strip_tile_px);
  CHECK(o->strip_gap_px >= 0 && o->strip_gap_px <= 64, "strip_gap_px %d is not in 0..64", o->strip_gap_px);
  CHECK(o->png_level >= 0 && o->png_level <= 9, "png_level %d is not in 0..9", o->png_level);
  CHECK(tile_l0 > 0 && tile_l0 <= ((int64_t)1 << 30), "tile side %lld level-0 px is not in 1..2^30", (long long)tile_l0);
#undef CHECK
  return 0;
}

enum { LEGEND_ROWS = 24 };

static void draw_legend(uint8_t *img, int w, int th) {
  memset(img + (size_t)th * w * 3, 255, (size_t)LEGEND_ROWS * w * 3);
  int bw = w - 16 < 256 ? w - 16 : 256, x0 = 8, y0 = th + 6, bh = 12;
  if (bw < 16) return;
  for (int y = y0 - 1; y <= y0 + bh; y++)
    for (int x = x0 - 1; x <= x0 + bw; x++) {
      uint8_t *px = img + ((size_t)y * w + x) * 3;
      if (y < y0 || y == y0 + bh || x < x0 || x == x0 + bw) {
        memset(px, 96, 3); /* grey frame */
        continue;
      }
      float c[3];
      ts_heatmap_viridis((double)(x - x0) / (bw - 1), c);
      for (int k = 0; k < 3; k++) px[k] = (uint8_t)(c[k] * 255.0f + 0.5f);
    }
}

static int encode_png(const uint8_t *rgb, int w, int h, int level, void **buf_out, size_t *len_out) {
  *buf_out = NULL;
  *len_out = 0;
  VipsImage *v = vips_image_new_from_memory(rgb, (size_t)w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
  if (!v) {
    int rc = ts_error_set(TS_EINTERNAL, "VIPS", "heatmap: %s", vips_error_buffer());
    vips_error_clear();
    return rc;
  }
  v->Type = VIPS_INTERPRETATION_sRGB;
  /* strip: no timestamps or other metadata, so the same input gives the same bytes. */
  int bad = vips_pngsave_buffer(v, buf_out, len_out, "compression", level, "strip", TRUE, NULL);
  g_object_unref(v);
  if (bad) {
    int rc = ts_error_set(TS_EINTERNAL, "VIPS", "heatmap: PNG encoding failed: %s", vips_error_buffer());
    vips_error_clear();
    return rc;
  }
  return 0;
}

/* The thumbnail geometry: size and level-0 px per thumbnail px. */
static void thumb_size(const ts_slide *s, int max_px, int *tw, int *th, double *sx, double *sy) {
  int64_t w0, h0;
  ts_slide_level_dims(s, 0, &w0, &h0);
  int64_t lng = w0 > h0 ? w0 : h0;
  if (lng <= max_px) {
    *tw = (int)w0;
    *th = (int)h0;
  } else {
    *tw = (int)llround((double)w0 * max_px / (double)lng);
    *th = (int)llround((double)h0 * max_px / (double)lng);
  }
  if (*tw < 1) *tw = 1;
  if (*th < 1) *th = 1;
  *sx = (double)w0 / *tw;
  *sy = (double)h0 / *th;
}

/* First index of the destination pixels whose centres lie at or after a (in level-0 px, scale f). */
static int64_t first_centre(double a, double f) {
  return (int64_t)ceil(a / f - 0.5);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

static int draw_heatmap(ts_slide *s, const ts_mask *tissue, const int64_t *coords, int64_t n, int64_t tile_l0,
                        const float *pct, const ts_heatmap_opts *o, uint8_t **img_out, int *w_out, int *h_out) {
  int rc = 0, tw, th;
  double sx, sy;
  thumb_size(s, o->max_px, &tw, &th, &sx, &sy);
  int hh = th + (o->legend ? LEGEND_ROWS : 0);
  size_t np = (size_t)tw * th;
  uint8_t *img = malloc((size_t)tw * hh * 3);
  float *acc = calloc(np, sizeof *acc);
  uint32_t *cnt = calloc(np, sizeof *cnt);
  int64_t *mcol = malloc((size_t)tw * sizeof *mcol), *mrow = malloc((size_t)th * sizeof *mrow);
  if (!img || !acc || !cnt || !mcol || !mrow) TS_FAIL(TS_ENOMEM, "ENOMEM", "heatmap: thumbnail %d x %d", tw, th);

  int level = level_for(s, sx < sy ? sx : sy);
  double ds = ts_slide_level_downsample(s, level);
  int64_t lw, lh;
  ts_slide_level_dims(s, level, &lw, &lh);
  TS_TRY(read_area(s, level, 0, 0, sx / ds, sy / ds, lw, lh, tw, th, img));

  for (int64_t t = 0; t < n; t++) { /* footprints: pixels whose centre is in the tile */
    double x = (double)coords[2 * t], y = (double)coords[2 * t + 1], side = (double)tile_l0;
    int64_t j0 = clamp64(first_centre(x, sx), 0, tw), j1 = clamp64(first_centre(x + side, sx), 0, tw);
    int64_t i0 = clamp64(first_centre(y, sy), 0, th), i1 = clamp64(first_centre(y + side, sy), 0, th);
    for (int64_t i = i0; i < i1; i++)
      for (int64_t j = j0; j < j1; j++) {
        acc[(size_t)i * tw + j] += pct[t];
        cnt[(size_t)i * tw + j]++;
      }
  }
  if (tissue) { /* mask pixel under each thumbnail pixel centre, -1 outside the mask */
    for (int j = 0; j < tw; j++) {
      int64_t m = (int64_t)floor((j + 0.5) * sx / tissue->scale_x);
      mcol[j] = m >= 0 && m < tissue->w ? m : -1;
    }
    for (int i = 0; i < th; i++) {
      int64_t m = (int64_t)floor((i + 0.5) * sy / tissue->scale_y);
      mrow[i] = m >= 0 && m < tissue->h ? m : -1;
    }
  }
  for (int i = 0; i < th; i++)
    for (int j = 0; j < tw; j++) {
      size_t p = (size_t)i * tw + j;
      if (!cnt[p]) continue;
      if (tissue && (mcol[j] < 0 || mrow[i] < 0 || !tissue->data[(size_t)mrow[i] * tissue->w + mcol[j]])) continue;
      float c[3];
      ts_heatmap_viridis((double)acc[p] / cnt[p], c);
      uint8_t *px = img + p * 3;
      for (int k = 0; k < 3; k++) {
        double v = (1.0 - o->alpha) * px[k] + o->alpha * 255.0 * c[k];
        px[k] = (uint8_t)(v + 0.5);
      }
    }
  if (o->legend) draw_legend(img, tw, th);
  *img_out = img;
  img = NULL;
  *w_out = tw;
  *h_out = hh;
out:
  free(img);
  free(acc);
  free(cnt);
  free(mcol);
  free(mrow);
  return rc;
}

/* The top tiles (a: scores ascending, so the best are at the end; equal scores: the lower index
 * first, i.e. walk each group of ties forwards). */
static int draw_strip(ts_slide *s, const int64_t *coords, const scored *a, int64_t n, int64_t tile_l0,
                      const ts_heatmap_opts *o, uint8_t **img_out, int *w_out, int *h_out) {
  int rc = 0, px = o->strip_tile_px, gap = o->strip_gap_px;
  int k = n < o->top_k ? (int)n : o->top_k;
  int w = k * px + (k - 1) * gap;
  uint8_t *img = malloc((size_t)w * px * 3), *cell = malloc((size_t)px * px * 3);
  int64_t *pick = malloc((size_t)k * sizeof *pick);
  if (!img || !cell || !pick) TS_FAIL(TS_ENOMEM, "ENOMEM", "heatmap: strip of %d tiles", k);
  memset(img, 255, (size_t)w * px * 3);
  int got = 0;
  for (int64_t e = n; e > 0 && got < k;) { /* groups of equal scores from the top */
    int64_t g = e - 1;
    while (g > 0 && a[g - 1].v == a[e - 1].v) g--;
    for (int64_t q = g; q < e && got < k; q++) pick[got++] = a[q].i;
    e = g;
  }
  double target = (double)tile_l0 / px;
  int level = level_for(s, target);
  double f = target / ts_slide_level_downsample(s, level);
  for (int c = 0; c < k; c++) {
    TS_TRY(read_area(s, level, coords[2 * pick[c]], coords[2 * pick[c] + 1], f, f, 0, 0, px, px, cell));
    for (int y = 0; y < px; y++)
      memcpy(img + ((size_t)y * w + (size_t)c * (px + gap)) * 3, cell + (size_t)y * px * 3, (size_t)px * 3);
  }
  *img_out = img;
  img = NULL;
  *w_out = w;
  *h_out = px;
out:
  free(img);
  free(cell);
  free(pick);
  return rc;
}

int ts_heatmap_png(ts_slide *s, const ts_mask *tissue, const int64_t *coords, int64_t n, int64_t tile_l0,
                   const float *scores, const ts_heatmap_opts *o, const char *png_path, const char *strip_path) {
  int rc = 0;
  ts_heatmap_opts def;
  scored *a = NULL;
  float *pct = NULL;
  uint8_t *hm = NULL, *strip = NULL;
  void *hm_png = NULL, *strip_png = NULL;
  size_t hm_len = 0, strip_len = 0;
  int hw = 0, hh = 0, sw = 0, sh = 0;
  if (!o) {
    ts_heatmap_opts_default(&def);
    o = &def;
  }
  if (!s || !png_path || n < 0 || (n > 0 && (!coords || !scores)))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_heatmap_png: bad arguments");
  if (tissue && (!tissue->data || tissue->w <= 0 || tissue->h <= 0 || !(tissue->scale_x > 0) || !(tissue->scale_y > 0)))
    return ts_error_set(TS_EINVAL, "EINVAL", "ts_heatmap_png: tissue mask without data or scale");
  if (n == 0)
    return ts_error_set(TS_EINPUT, "HEATMAP_NO_TILES", "slide '%s': no tiles, no heatmap to draw (%s not written)",
                        ts_slide_id(s), png_path);
  TS_CALL(check_opts(o, tile_l0));
  TS_CALL(check_scores(scores, n));
  pct = malloc((size_t)n * sizeof *pct);
  if (!pct) return ts_error_set(TS_ENOMEM, "ENOMEM", "heatmap: %lld tiles", (long long)n);
  TS_TRY(sort_scores(scores, n, &a));
  percentiles_from_sorted(a, n, pct);
  /* Both images first, then the files: an error while drawing writes nothing. */
  TS_TRY(draw_heatmap(s, tissue, coords, n, tile_l0, pct, o, &hm, &hw, &hh));
  if (strip_path) TS_TRY(draw_strip(s, coords, a, n, tile_l0, o, &strip, &sw, &sh));
  TS_TRY(encode_png(hm, hw, hh, o->png_level, &hm_png, &hm_len));
  if (strip_path) TS_TRY(encode_png(strip, sw, sh, o->png_level, &strip_png, &strip_len));
  TS_TRY(ts_io_write_atomic(png_path, hm_png, hm_len));
  if (strip_path) TS_TRY(ts_io_write_atomic(strip_path, strip_png, strip_len));
out:
  g_free(hm_png);
  g_free(strip_png);
  free(hm);
  free(strip);
  free(a);
  free(pct);
  return rc;
}
