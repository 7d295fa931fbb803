import { v7 } from 'uuid';

/**
 * A new row or event id: a UUIDv7 (RFC 9562), whose first 48 bits are the creation time in
 * milliseconds. Ids sort by time, so a table partitioned by range of its id (the orders database)
 * knows an id's partition from the id alone.
 */
export const newId = (): string => v7();
