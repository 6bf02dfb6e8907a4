// Label values every metrics module shares (its own file so the request and edge figures need not import each other).
/** Label value for requests no service matched (unknown hosts). */
export const UNKNOWN_SERVICE = '_unknown';
/** Label value of the servers beyond the per-service cap, and of services beyond the service cap. */
export const OTHER = '_other';
