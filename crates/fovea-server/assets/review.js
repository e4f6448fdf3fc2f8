// fovea — the review queue on the Classify page: the images that would teach the model most, fed into the same
// keyboard labelling flow as an upload batch (each decision moves on to the next, already classified).

import { api, blobUrl, toast } from './api.js';

const BATCH = 10;

/** Fetches the next images to label and hands them to `enqueue` as files. */
export async function loadReview(enqueue, button) {
  button.disabled = true;
  try {
    const queue = await api(`/review?limit=${BATCH}`);
    const items = Array.isArray(queue?.items) ? queue.items : [];
    if (!items.length) {
      toast('Nothing to review: every stored image is labelled (or none is embedded yet).');
      return;
    }
    const files = await Promise.all(items.map(async (item, i) => {
      const res = await fetch(blobUrl(item.image_id));
      if (!res.ok) throw new Error(`image ${item.image_id}: HTTP ${res.status}`);
      const blob = await res.blob();
      const type = blob.type.startsWith('image/') ? blob.type : 'image/png';
      return new File([blob], `review ${i + 1} of ${items.length}`, { type });
    }));
    enqueue(files);
    // Off the button, so Enter confirms the top class instead of fetching the queue again.
    document.getElementById('result-panel')?.focus();
  } catch (err) {
    toast(`Could not load the review queue: ${err.message || err}`, 'error');
  } finally {
    button.disabled = false;
  }
}
