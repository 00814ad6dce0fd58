// IndexedDB for the portal: the signed-in identity (non-extractable CryptoKeys survive a reload
// without ever leaving WebCrypto) and the sealed releases a department received (kept sealed).

const DB = "shulian-portal";
const VERSION = 1;

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains("identity")) db.createObjectStore("identity");
      if (!db.objectStoreNames.contains("releases")) {
        const store = db.createObjectStore("releases", { keyPath: "id" });
        store.createIndex("owner", "owner");
      }
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(storeName, mode, action) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode);
      const req = action(tx.objectStore(storeName));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const loadIdentity = () => run("identity", "readonly", (s) => s.get("current"));
export const saveIdentity = (identity) => run("identity", "readwrite", (s) => s.put(identity, "current"));
export const clearIdentity = () => run("identity", "readwrite", (s) => s.delete("current"));

export const saveRelease = (release) => run("releases", "readwrite", (s) => s.put(release));
export const releasesOf = (owner) => run("releases", "readonly", (s) => s.index("owner").getAll(owner));
